// "Install agent" on the Agents page (docs/agent.md, "Install by pairing"),
// in Debian's Chromium (headless, playwright-core); run by
// tests/e2e/test_pairing.py.
//
//   node e2e/pairing.mjs CONFIG.json
//
// CONFIG: {url, admin_user, admin_password, tags, name, screenshots}
// An administrator opens Agents, presses "Install agent", gives tags and a
// name, creates a pairing code and reads the one-line command the page
// shows. Prints one JSON line {command, status}; exits 1 with the failed
// step on stderr otherwise. No console errors.
import { Run } from './lib.mjs';

const run = new Run();
const { cfg, results } = run;

await run.main(async (browser) => {
  const page = await run.adminPage(browser);

  run.step = 'open Agents';
  await page.getByRole('link', { name: 'Agents', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Agents' }).waitFor();

  run.step = 'create a pairing code';
  await page.getByRole('button', { name: 'Install agent' }).click();
  const form = page.getByRole('form', { name: 'New pairing code' });
  await form.getByLabel('Tags (optional)').fill(cfg.tags.join(', '));
  await form.getByLabel('Agent name (optional)').fill(cfg.name);
  await form.getByRole('button', { name: 'Create pairing code' }).click();
  const region = page.getByRole('region', { name: 'Install agent' });
  const line = region.locator('.codeline code');
  await line.waitFor({ timeout: 20000 });
  results.command = (await line.innerText()).trim();
  results.status = (await region.getByRole('status').innerText()).replace(/\s+/g, ' ').trim();
  await region.getByRole('button', { name: 'Copy install command' }).waitFor();
  await run.shot(page, 'install-agent');
});
