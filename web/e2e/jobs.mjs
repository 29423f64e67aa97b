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
// while the jobs still run, then both lines and the exit code; then opens
// the first batch again from the history; a command the agent's deny
// rule refuses shows "refused" and the rule. Prints one JSON line of
// results; exits 1 with the failed step on stderr otherwise. No console
// errors.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const CHROMIUM = process.env.PORTCULLIS_CHROMIUM || '/usr/bin/chromium';
const results = {};
const consoleErrors = [];
let step = 'start';

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const browser = await chromium.launch({
  executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'], headless: true,
});
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`[${step}] ${m.text()}`); });
  page.on('pageerror', (e) => consoleErrors.push(`[${step}] page error: ${e.message}`));

  step = 'sign in';
  await page.goto(`${cfg.url}/login`);
  await page.getByLabel('User name').fill(cfg.admin_user);
  await page.getByLabel('Password').fill(cfg.admin_password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor({ timeout: 20000 });

  step = "an agent's page links Jobs with it checked";
  await page.goto(`${cfg.url}/agents/${encodeURIComponent(cfg.agents[1])}`);
  await page.getByRole('link', { name: 'Run a command' }).click();
  await page.getByRole('heading', { level: 1, name: 'Jobs' }).waitFor();
  const form = page.getByRole('form', { name: 'Run a command' });
  await form.getByLabel(new RegExp(`^${esc(cfg.agents[0])} \\(`)).waitFor({ timeout: 20000 });
  results.prechecked = [];
  for (const id of cfg.agents) {
    if (await form.getByLabel(new RegExp(`^${esc(id)} \\(`)).isChecked()) results.prechecked.push(id);
  }

  step = 'open Jobs';
  await page.getByRole('link', { name: 'Jobs', exact: true }).click();
  await page.waitForURL((u) => u.pathname === '/jobs' && u.search === '', { timeout: 20000 });
  // every control has a label or text (as run.mjs checks on every page)
  const bare = await page.evaluate(() => [
    ...[...document.querySelectorAll('input, select, textarea')]
      .filter((e) => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label')),
    ...[...document.querySelectorAll('button, a[href]')]
      .filter((e) => !e.textContent.trim() && !e.getAttribute('aria-label')),
  ].map((e) => e.outerHTML.slice(0, 120)));
  if (bare.length) throw new Error(`controls without a label: ${bare.join(' ')}`);

  step = 'run echo on the two checked agents';
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

  step = 'run by tag and watch the output arrive';
  await form.getByLabel('Or by tags').fill(cfg.tag);
  for (const id of cfg.agents) await form.getByLabel(new RegExp(`^${esc(id)} \\(`)).uncheck();
  await form.getByLabel('Command').fill(`echo first-${cfg.mark}; sleep 4; echo second-${cfg.mark}`);
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
  results.second = {};
  for (const id of cfg.agents) {
    const job = out.getByRole('region', { name: `Output of ${id}` });
    results.second[id] = {
      heading: (await job.getByRole('heading').innerText()).trim(),
      stdout: await job.getByLabel(`stdout of ${id}`).innerText(),
    };
  }
  if (cfg.screenshots) {
    mkdirSync(cfg.screenshots, { recursive: true });
    await page.screenshot({ path: join(cfg.screenshots, 'jobs.png'), fullPage: true });
  }

  step = 'the history';
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

  step = 'a refused job says why';
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

  if (consoleErrors.length) throw new Error(`console errors:\n${consoleErrors.join('\n')}`);
  console.log(JSON.stringify(results));
} catch (e) {
  console.error(`${step}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
