// The clipboard copies of an RDP recording listed by the web UI's player
// (docs/rdp.md "Virtual channels"), in Debian's Chromium (headless,
// playwright-core); run by tests/e2e/test_rdp_clipboard.py.
//
//   node e2e/rdpclip.mjs CONFIG.json
//
// CONFIG: {url, user, password, session_id}
// An administrator signs in, opens the session's page, presses "Play
// recording" and prints one JSON line: the text of the list of clipboard
// copies. Exits 1 with the failed step on stderr otherwise. No console
// errors.
import { Run } from './lib.mjs';

const run = new Run();
const { cfg } = run;
let page = null;

await run.main(async (browser) => {
  page = await run.newPage(browser, { viewport: { width: 1280, height: 1000 } });
  run.step = 'sign in';
  await run.signIn(page, cfg.user, cfg.password);

  run.step = 'the session page';
  await page.goto(`${cfg.url}/sessions/${cfg.session_id}`);
  await page.getByText('RDP recording', { exact: false }).first().waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Play recording' }).click();

  run.step = 'the clipboard copies';
  const list = page.getByRole('list', { name: 'Clipboard copies' });
  await list.waitFor({ timeout: 20000 });
  run.results.clips = await list.innerText();
}, async () => {
  const body = page ? (await page.locator('body').innerText().catch(() => '')).slice(0, 1500) : '';
  return `\npage:\n${body}\n${run.consoleErrors.join('\n')}`;
});
