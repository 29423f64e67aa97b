// What the browser scripts in web/e2e share: Debian's Chromium (headless,
// playwright-core), the test's CONFIG.json, the step a failure names,
// console errors collected per page, signing in, screenshots, the
// unlabelled-controls check, and the frame every one-shot script has
// (run its steps, fail on a console error, print one JSON line of
// results; on a failure print the step and exit 1, closing the browser
// either way). The scripts are run by tests/e2e/*.py with `node
// e2e/NAME.mjs CONFIG.json` in web/.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.PORTCULLIS_CHROMIUM || '/usr/bin/chromium';

// The page size of every script unless it asks for another.
export const VIEWPORT = { width: 1280, height: 900 };

// The test's CONFIG.json, named by the first argument.
export function readConfig() {
  return JSON.parse(readFileSync(process.argv[2], 'utf8'));
}

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    headless: true,
  });
}

// A regular expression matching s literally.
export const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Every input, select and textarea without a label, and every button or
// link without text or aria-label, on the page (their HTML, cut short):
// keyboard and screen-reader basics.
export function unlabelledControls(page) {
  return page.evaluate(() => [
    ...[...document.querySelectorAll('input, select, textarea')]
      .filter((e) => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label')),
    ...[...document.querySelectorAll('button, a[href]')]
      .filter((e) => !e.textContent.trim() && !e.getAttribute('aria-label')),
  ].map((e) => e.outerHTML.slice(0, 120)));
}

// One run of a script: cfg, the step under way (set run.step before each
// one: failures and console errors name it), results (printed as one JSON
// line at the end) and the console errors seen.
export class Run {
  constructor() {
    this.cfg = readConfig();
    this.step = 'start';
    this.results = {};
    this.consoleErrors = [];
  }

  // Collects page's console errors and uncaught exceptions, except a
  // console message allowed(m) accepts (a refusal the script provokes).
  watch(page, allowed = () => false) {
    page.on('console', (m) => {
      if (m.type() !== 'error' || allowed(m)) return;
      const url = (m.location() || {}).url || '';
      this.consoleErrors.push(`[${this.step}] ${m.text()}${url ? ` ${url}` : ''}`);
    });
    page.on('pageerror', (e) => this.consoleErrors.push(`[${this.step}] page error: ${e.message}`));
  }

  // A page in a new browser context (VIEWPORT unless options say), watched.
  async newPage(browser, options = {}, allowed = undefined) {
    const ctx = await browser.newContext({ viewport: VIEWPORT, ...options });
    const page = await ctx.newPage();
    this.watch(page, allowed);
    return page;
  }

  // Signs user in on the login page; waits for the Dashboard unless
  // dashboard is false (a refusal the caller reads).
  async signIn(page, user, password, { dashboard = true } = {}) {
    await page.goto(`${this.cfg.url}/login`);
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    if (dashboard) {
      await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor({ timeout: 20000 });
    }
  }

  // The first step of most scripts: a new page, signed in as the
  // administrator (cfg.admin_user, cfg.admin_password).
  async adminPage(browser) {
    const page = await this.newPage(browser);
    this.step = 'sign in';
    await this.signIn(page, this.cfg.admin_user, this.cfg.admin_password);
    return page;
  }

  // NAME.png in cfg.screenshots, if the test asked for screenshots.
  async shot(page, name, options = {}) {
    if (!this.cfg.screenshots) return;
    mkdirSync(this.cfg.screenshots, { recursive: true });
    await page.screenshot({ path: join(this.cfg.screenshots, `${name}.png`), ...options });
  }

  // Runs steps(browser, run) in a fresh browser; then no console error may
  // have been seen, and the results are printed. On a failure: "STEP:
  // MESSAGE" (and what failure(e) adds) on stderr, exit status 1.
  async main(steps, failure = async () => '') {
    const browser = await launch();
    try {
      await steps(browser, this);
      if (this.consoleErrors.length) throw new Error(`console errors:\n${this.consoleErrors.join('\n')}`);
      console.log(JSON.stringify(this.results));
    } catch (e) {
      console.error(`${this.step}: ${e.message}${await failure(e)}`);
      process.exitCode = 1;
    } finally {
      await browser.close();
    }
  }
}
