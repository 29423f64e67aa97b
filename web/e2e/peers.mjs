// Peer nodes in the web UI (docs/operations.md "Peer nodes"), in Debian's
// Chromium (headless, playwright-core); run by tests/e2e/test_peer_route.py,
// which starts the segment's node in a network namespace and the main node.
//
//   node e2e/peers.mjs CONFIG.json
//
// CONFIG: {url, admin_user, admin_password, peer: {name, host, port,
//          fingerprint, token}, asset: {name, host, port, private_key,
//          fingerprint}, screenshots (a directory or null)}
// An administrator adds the peer on Configuration > Peer Nodes, checks it
// (the peer's proxy answers with its version), creates an asset whose
// route is peer:NAME, and a tunnel through the peer to the same target. Prints one JSON line of results; exits 1 with the
// failed step on stderr otherwise. No console errors.
import { Run } from './lib.mjs';

const run = new Run();
const { cfg, results } = run;

await run.main(async (browser) => {
  const page = await run.adminPage(browser);

  run.step = 'add the peer';
  await page.getByRole('link', { name: 'Peer nodes' }).click();
  await page.getByRole('heading', { level: 1, name: 'Peer nodes' }).waitFor();
  const form = page.getByRole('form', { name: 'New peer node' });
  await form.getByLabel('Name').fill(cfg.peer.name);
  await form.getByLabel('Proxy host').fill(cfg.peer.host);
  await form.getByLabel('Proxy port').fill(String(cfg.peer.port));
  await form.getByLabel('TLS fingerprint').fill(cfg.peer.fingerprint);
  await form.getByLabel("API token of the peer's service user").fill(cfg.peer.token);
  await form.getByRole('button', { name: 'Add peer' }).click();
  const table = page.getByRole('table', { name: 'Peer nodes' });
  const row = table.getByRole('row').filter({ hasText: cfg.peer.name });
  await row.waitFor({ timeout: 20000 });
  results.row = (await row.innerText()).replace(/\s+/g, ' ').trim();

  run.step = 'check the peer';
  await row.getByRole('button', { name: 'Check' }).click();
  await row.getByText(/^ok: |refused|cannot|not the pinned/).waitFor({ timeout: 30000 });
  results.check = (await row.locator('.check-result').innerText()).trim();
  await run.shot(page, 'peers');

  run.step = 'an asset through the peer';
  await page.getByRole('link', { name: 'Assets' }).click();
  await page.getByRole('heading', { level: 1, name: 'Assets' }).waitFor();
  await page.getByRole('button', { name: /new asset/i }).click();
  await page.getByLabel('Name', { exact: true }).fill(cfg.asset.name);
  await page.getByLabel('Host', { exact: true }).fill(cfg.asset.host);
  await page.getByLabel('Port', { exact: true }).fill(String(cfg.asset.port));
  await page.getByLabel('Login on the target').fill('root');
  await page.getByLabel('Private key (vaulted, PEM/OpenSSH)').fill(cfg.asset.private_key);
  await page.getByLabel('Host key fingerprint').fill(cfg.asset.fingerprint);
  await page.getByLabel('Route').fill(`peer:${cfg.peer.name}`);
  await page.getByRole('button', { name: 'Create asset' }).click();
  await page.getByRole('heading', { level: 1, name: `Asset ${cfg.asset.name}` }).waitFor({ timeout: 20000 });
  results.asset_route = (await page.locator('dl.facts').innerText()).includes(`peer:${cfg.peer.name}`);
  results.asset_url = page.url();

  run.step = 'a tunnel through the peer';
  await page.getByRole('link', { name: 'Peer nodes' }).click();
  await page.getByRole('heading', { level: 1, name: 'Peer nodes' }).waitFor();
  const tform = page.getByRole('form', { name: 'New tunnel through a peer' });
  await tform.getByLabel('Peer').selectOption(cfg.peer.name);
  await tform.getByLabel('To HOST:PORT').fill(`${cfg.asset.host}:${cfg.asset.port}`);
  await tform.getByLabel('Allowed clients (CIDRs; default: you)').fill('127.0.0.1');
  await tform.getByRole('button', { name: 'Create tunnel' }).click();
  const trow = page.getByRole('table', { name: 'Tunnels through peers' }).getByRole('row')
    .filter({ hasText: `peer:${cfg.peer.name}` });
  await trow.waitFor({ timeout: 20000 });
  results.tunnel_row = (await trow.innerText()).replace(/\s+/g, ' ').trim();
  results.tunnel_port = Number(/:(\d+)/.exec(results.tunnel_row)[1]);
  await run.shot(page, 'peer-tunnels');
});
