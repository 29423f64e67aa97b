// Domain logins in the web UI (docs/directories.md), in Debian's Chromium
// (headless, playwright-core); run by tests/e2e/test_directory.py, which
// starts slapd and a server with directories configured.
//
//   node e2e/directory.mjs CONFIG.json
//
// CONFIG: {url, domain_user, domain_password, wrong_password, admin_user,
//          admin_password, screenshots (a directory or null)}
// A domain user signs in with the directory's password (a wrong one is
// refused in words); an administrator sees the Directories page with its
// group mapping. Prints one JSON line of results; exits 1 with the failed
// step on stderr otherwise. No console errors but the provoked 401.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const CHROMIUM = process.env.PORTCULLIS_CHROMIUM || '/usr/bin/chromium';
const results = {};
const consoleErrors = [];
let step = 'start';

function expect(cond, msg) {
  if (!cond) throw new Error(`${step}: ${msg}`);
}

function watch(page) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = (m.location() || {}).url || '';
    if (step === 'a wrong password' && url.includes('/api/v1/login') &&
        m.text().includes('status of 401')) return;
    consoleErrors.push(`[${step}] ${m.text()} ${url}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`[${step}] page error: ${e.message}`));
}

async function signIn(page, user, password) {
  await page.goto(`${cfg.url}/login`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const browser = await chromium.launch({
  executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'], headless: true,
});
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  watch(page);

  step = 'a wrong password';
  await signIn(page, cfg.domain_user, cfg.wrong_password);
  const alert = page.getByRole('alert');
  await alert.waitFor({ timeout: 20000 });
  results.wrong = (await alert.innerText()).trim();

  step = 'the domain user signs in';
  await signIn(page, cfg.domain_user, cfg.domain_password);
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor({ timeout: 20000 });
  results.signed_in = await page.getByText(cfg.domain_user).first().isVisible();
  await ctx.close();

  step = 'an administrator sees the directories';
  const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const admin = await ctx2.newPage();
  watch(admin);
  await signIn(admin, cfg.admin_user, cfg.admin_password);
  await admin.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor({ timeout: 20000 });
  await admin.getByRole('link', { name: 'Directories' }).click();
  await admin.getByRole('heading', { level: 1, name: 'Directories' }).waitFor();
  await admin.waitForLoadState('networkidle');
  results.domains = await admin.getByRole('heading', { level: 2 }).allInnerTexts();
  results.mapping = await admin.getByRole('table', { name: 'Group mapping of contoso.com' })
    .getByRole('row').allInnerTexts();
  if (cfg.screenshots) {
    mkdirSync(cfg.screenshots, { recursive: true });
    await admin.screenshot({ path: join(cfg.screenshots, 'directories.png') });
  }
  await ctx2.close();
  expect(consoleErrors.length === 0, `console errors:\n${consoleErrors.join('\n')}`);
  console.log(JSON.stringify(results));
} catch (e) {
  console.error(e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
