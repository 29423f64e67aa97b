// An rdp asset's page in the web UI (docs/rdp.md), in Debian's Chromium
// (headless, playwright-core); run by tests/e2e/test_rdp.py.
//
//   node e2e/rdp.mjs CONFIG.json
//
// CONFIG: {url, user, password, asset_id, download (a file path),
//          screenshots (a directory or null)}
// The user signs in, opens the asset's page and downloads the .rdp file
// (saved to CONFIG.download); prints one JSON line with the xfreerdp
// command line and the user name the page shows. Exits 1 with the failed
// step on stderr otherwise. No console errors.
import { Run } from './lib.mjs';

const run = new Run();
const { cfg, results } = run;
let page = null;

await run.main(async (browser) => {
  page = await run.newPage(browser, { acceptDownloads: true });
  run.step = 'sign in';
  await run.signIn(page, cfg.user, cfg.password);

  run.step = 'the asset page';
  await page.goto(`${cfg.url}/assets/${cfg.asset_id}`);
  const link = page.getByRole('link', { name: /^Download .*\.rdp$/ });
  await link.waitFor({ timeout: 20000 });
  results.xfreerdp = (await page.locator('.codeline', { hasText: 'xfreerdp' }).locator('code').innerText()).trim();
  results.user_name = (await page.locator('.codeline', { hasText: 'User name' }).locator('code').innerText()).trim();
  await run.shot(page, 'rdp-asset');

  run.step = 'download the .rdp file';
  const [dl] = await Promise.all([page.waitForEvent('download'), link.click()]);
  results.filename = dl.suggestedFilename();
  await dl.saveAs(cfg.download);
}, async () => {
  const body = page ? (await page.locator('body').innerText().catch(() => '')).slice(0, 1500) : '';
  return `\npage:\n${body}\n${run.consoleErrors.join('\n')}`;
});
