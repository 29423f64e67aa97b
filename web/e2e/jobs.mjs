// Jobs in the web UI (issue 14, docs/web.md "/jobs"), in Debian's Chromium
// (headless, playwright-core); run by tests/e2e/test_jobs_web.py, which
// starts the server and two real agents (one in a network namespace).
//
//   node e2e/jobs.mjs CONFIG.json
//
// CONFIG: {url, admin_user, admin_password, agents: [id, id], tag, mark,
//          denied (a command the agents' command_deny refuses),
//          screenshots (a directory or null)}
// An administrator opens Jobs, checks both agents, runs `echo MARK` and
// sees each agent's output and "ok (exit 0)"; then runs, by tag, a
// command that prints, sleeps and prints again, and sees the first line
// while the jobs still run (pushed through each job's event stream, not
// polled), then both lines and the exit code; then opens
// the first batch again from the history; a command the agent's deny
// rule refuses shows "refused" and the rule; with the stream answering
// 503, a job's output still arrives while it runs (polled). Prints one JSON line of
// results; exits 1 with the failed step on stderr otherwise. No console
// errors.
import { Run, esc, unlabelledControls } from './lib.mjs';

const run = new Run();
const { cfg, results } = run;

await run.main(async (browser) => {
  const page = await run.adminPage(browser);

  run.step = "an agent's page links Jobs with it checked";
  await page.goto(`${cfg.url}/agents/${encodeURIComponent(cfg.agents[1])}`);
  await page.getByRole('link', { name: 'Run a command' }).click();
  await page.getByRole('heading', { level: 1, name: 'Jobs' }).waitFor();
  const form = page.getByRole('form', { name: 'Run a command' });
  await form.getByLabel(new RegExp(`^${esc(cfg.agents[0])} \\(`)).waitFor({ timeout: 20000 });
  results.prechecked = [];
  for (const id of cfg.agents) {
    if (await form.getByLabel(new RegExp(`^${esc(id)} \\(`)).isChecked()) results.prechecked.push(id);
  }

  run.step = 'open Jobs';
  await page.getByRole('link', { name: 'Jobs', exact: true }).click();
  await page.waitForURL((u) => u.pathname === '/jobs' && u.search === '', { timeout: 20000 });
  // every control has a label or text (as run.mjs checks on every page)
  const bare = await unlabelledControls(page);
  if (bare.length) throw new Error(`controls without a label: ${bare.join(' ')}`);

  run.step = 'run echo on the two checked agents';
  for (const id of cfg.agents) {
    const box = form.getByLabel(new RegExp(`^${esc(id)} \\(online`));
    await box.waitFor({ timeout: 20000 });
    await box.check();
  }
  await form.getByLabel('Command').fill(`echo ${cfg.mark}`);
  await form.getByRole('button', { name: 'Run on 2 agents' }).click();
  const out = page.getByRole('region', { name: 'Batch output' });
  await out.getByText('All 2 finished.').waitFor({ timeout: 30000 });
  results.first = {};
  for (const id of cfg.agents) {
    const job = out.getByRole('region', { name: `Output of ${id}` });
    results.first[id] = {
      heading: (await job.getByRole('heading').innerText()).trim(),
      stdout: await job.getByLabel(`stdout of ${id}`).innerText(),
    };
  }
  results.first_url = new URL(page.url()).search;

  run.step = 'run by tag and watch the output arrive';
  await form.getByLabel('Or by tags').fill(cfg.tag);
  for (const id of cfg.agents) await form.getByLabel(new RegExp(`^${esc(id)} \\(`)).uncheck();
  await form.getByLabel('Command').fill(`echo first-${cfg.mark}; sleep 4; echo second-${cfg.mark}`);
  // which of the jobs' own routes the page asks while they run: each
  // job's stream once, GET /jobs/{id} only before and after it
  const asked = [];
  const onRequest = (r) => {
    const m = new URL(r.url()).pathname.match(/^\/api\/v1\/jobs\/([^/]+)(\/stream)?$/);
    if (m) asked.push(`${r.method()} ${m[1]}${m[2] || ''}`);
  };
  page.on('request', onRequest);
  await form.getByRole('button', { name: /^Run/ }).click();
  await page.waitForURL((u) => u.search !== results.first_url, { timeout: 20000 });
  // while they run: the first line is there, the second is not yet
  const running = [];
  for (const id of cfg.agents) {
    const job = out.getByRole('region', { name: `Output of ${id}` });
    await job.getByLabel(`stdout of ${id}`).getByText(`first-${cfg.mark}`).waitFor({ timeout: 20000 });
    running.push({
      heading: (await job.getByRole('heading').innerText()).trim(),
      stdout: await job.getByLabel(`stdout of ${id}`).innerText(),
    });
  }
  results.while_running = running;
  results.progress = (await out.locator('p[aria-live]').innerText()).trim();
  await out.getByText('All 2 finished.').waitFor({ timeout: 30000 });
  await page.waitForTimeout(1500); // a poll would have come by now
  page.off('request', onRequest);
  results.asked = [...asked];
  results.second = {};
  for (const id of cfg.agents) {
    const job = out.getByRole('region', { name: `Output of ${id}` });
    results.second[id] = {
      heading: (await job.getByRole('heading').innerText()).trim(),
      stdout: await job.getByLabel(`stdout of ${id}`).innerText(),
    };
  }
  await run.shot(page, 'jobs', { fullPage: true });

  run.step = 'the history';
  const history = page.getByRole('table', { name: 'Job history' });
  const rows = history.getByRole('row').filter({ hasText: cfg.mark });
  await rows.nth(1).waitFor({ timeout: 20000 });
  await history.getByRole('row').filter({ hasText: 'sleep' }).getByText('2 ok').waitFor({ timeout: 20000 });
  results.history = (await rows.allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
  await history.getByRole('row').filter({ hasText: `echo ${cfg.mark}` }).filter({ hasNotText: 'sleep' })
    .getByRole('link', { name: 'View output' }).click();
  await page.waitForURL((u) => u.search === results.first_url, { timeout: 20000 });
  await out.getByText('All 2 finished.').waitFor({ timeout: 20000 });
  results.again = {};
  for (const id of cfg.agents) {
    results.again[id] = await out.getByLabel(`stdout of ${id}`).innerText();
  }

  run.step = 'a refused job says why';
  await form.getByLabel('Or by tags').fill('');
  await form.getByLabel(new RegExp(`^${esc(cfg.agents[0])} \\(`)).check();
  await form.getByLabel('Command').fill(cfg.denied);
  await form.getByRole('button', { name: 'Run on 1 agent' }).click();
  await page.waitForURL((u) => u.search !== results.first_url, { timeout: 20000 });
  await out.getByText('All 1 finished.').waitFor({ timeout: 30000 });
  const refused = out.getByRole('region', { name: `Output of ${cfg.agents[0]}` });
  results.refused = {
    heading: (await refused.getByRole('heading').innerText()).trim(),
    why: (await refused.locator('.why').innerText()).trim(),
  };
  await history.getByRole('row').filter({ hasText: cfg.denied }).getByText('refused').waitFor({ timeout: 20000 });

  run.step = 'a job whose stream cannot be opened is polled';
  const refusedUrl = new URL(page.url()).search;
  const streamRoute = '**/api/v1/jobs/*/stream';
  await page.route(streamRoute, (r) => r.fulfill({
    status: 503, contentType: 'application/json',
    body: JSON.stringify({ errors: [{ status: '503', code: 'server_busy', title: 'Too many streams' }] }),
  }));
  asked.length = 0;
  page.on('request', onRequest);
  await form.getByLabel('Command').fill(`echo fallback-first-${cfg.mark}; sleep 3; echo fallback-second-${cfg.mark}`);
  await form.getByRole('button', { name: 'Run on 1 agent' }).click();
  await page.waitForURL((u) => u.search !== refusedUrl, { timeout: 20000 });
  const fb = out.getByRole('region', { name: `Output of ${cfg.agents[0]}` });
  await fb.getByLabel(`stdout of ${cfg.agents[0]}`).getByText(`fallback-first-${cfg.mark}`).waitFor({ timeout: 20000 });
  results.fallback_running = {
    heading: (await fb.getByRole('heading').innerText()).trim(),
    stdout: await fb.getByLabel(`stdout of ${cfg.agents[0]}`).innerText(),
  };
  await out.getByText('All 1 finished.').waitFor({ timeout: 30000 });
  page.off('request', onRequest);
  await page.unroute(streamRoute);
  results.fallback = {
    heading: (await fb.getByRole('heading').innerText()).trim(),
    stdout: await fb.getByLabel(`stdout of ${cfg.agents[0]}`).innerText(),
    asked: [...asked],
  };
  // the 503 this step made is the console's "Failed to load resource"
  const provoked = (e) => e.startsWith(`[${run.step}] `) && e.includes('status of 503') && e.includes('/stream');
  const others = run.consoleErrors.filter((e) => !provoked(e));
  run.consoleErrors.splice(0, run.consoleErrors.length, ...others);

});
