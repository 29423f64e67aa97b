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
import { Run } from './lib.mjs';

const run = new Run();
const { cfg, results } = run;
const VIEWPORT_800 = { width: 1280, height: 800 };

// The browser's line for the 401 of the wrong password, provoked on purpose.
const provoked = (m) => run.step === 'a wrong password' &&
  ((m.location() || {}).url || '').includes('/api/v1/login') && m.text().includes('status of 401');

await run.main(async (browser) => {
  const page = await run.newPage(browser, { viewport: VIEWPORT_800 }, provoked);

  run.step = 'a wrong password';
  await run.signIn(page, cfg.domain_user, cfg.wrong_password, { dashboard: false });
  const alert = page.getByRole('alert');
  await alert.waitFor({ timeout: 20000 });
  results.wrong = (await alert.innerText()).trim();

  run.step = 'the domain user signs in';
  await run.signIn(page, cfg.domain_user, cfg.domain_password);
  results.signed_in = await page.getByText(cfg.domain_user).first().isVisible();
  await page.context().close();

  run.step = 'an administrator sees the directories';
  const admin = await run.newPage(browser, { viewport: VIEWPORT_800 }, provoked);
  await run.signIn(admin, cfg.admin_user, cfg.admin_password);
  await admin.getByRole('link', { name: 'Directories' }).click();
  await admin.getByRole('heading', { level: 1, name: 'Directories' }).waitFor();
  await admin.waitForLoadState('networkidle');
  results.domains = await admin.getByRole('heading', { level: 2 }).allInnerTexts();
  results.mapping = await admin.getByRole('table', { name: 'Group mapping of contoso.com' })
    .getByRole('row').allInnerTexts();
  await run.shot(admin, 'directories');
  await admin.context().close();
});
