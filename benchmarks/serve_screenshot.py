"""A screenshot of the `gemner serve` page with a tagged post (docs/img/serve.png), taken by Debian's
headless Chromium through selenium from a server already running on this machine.

    gemner serve -c lite --port 8000 &
    python benchmarks/serve_screenshot.py --url http://127.0.0.1:8000 --output docs/img/serve.png
"""

from __future__ import annotations

import argparse
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait

POST = "RT @nytimes: Ted Cruz speaks about #Obamacare in Houston, Texas after meeting Barack Obama and the NFL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--output", default="docs/img/serve.png")
    parser.add_argument("--text", default=POST)
    parser.add_argument("--image", default=None, help="An image file to drop with the post.")
    parser.add_argument("--size", default="1100,900", help="Window width,height in pixels.")
    args = parser.parse_args()
    if not args.url.startswith(("http://127.", "http://localhost")):
        parser.error("the page is read from a server on this machine only")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={args.size}",
                 "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    try:
        driver.get(args.url.rstrip("/") + "/")
        WebDriverWait(driver, 30).until(ec.text_to_be_present_in_element((By.ID, "stages"), "recognizer"))
        driver.find_element(By.ID, "text").send_keys(args.text)
        if args.image:
            driver.find_element(By.ID, "image").send_keys(args.image)
        driver.find_element(By.ID, "submit").click()
        WebDriverWait(driver, 120).until(ec.visibility_of_element_located((By.ID, "result")))
        marks = driver.find_elements(By.CSS_SELECTOR, "#tagged mark.entity")
        print(f"{len(marks)} entities: " + "; ".join(m.text.replace("\n", " ") for m in marks))
        driver.save_screenshot(args.output)
        print(f"wrote {args.output}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
