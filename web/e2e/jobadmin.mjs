// Client groups, job roles, file push and schedules in the web UI
// (issue 14, docs/web.md), in Debian's Chromium (headless,
// playwright-core); run by tests/e2e/test_jobs_admin_web.py, which starts
// the server (a schedule clock of 2 s a minute) and two real agents, and
// checks afterwards what the pages changed through the API and on disk.
//
//   node e2e/jobadmin.mjs CONFIG.json
//
// CONFIG: {url, admin_user, admin_password, agents: [A, B] (IDs, named
//          alike), group (a new client group's name), operator: {user,
//          password} (no role yet), push: {inside, inside2, outside
//          (paths on agent B), content}, schedule (a new schedule's name),
//          runner: {user, password, group (a client group with A, on
//          which the runner holds job-runner), mark, tag_b (B's tag)},
//          screenshots (a directory or null)}
// An administrator makes a client group with A, is refused the same
// name twice, adds B and removes A; grants the operator job-pusher on it
// (a user who does not exist is refused); pushes a file to the group
// (refused outside B's file_push_dir); adds a schedule (a bad cron
// expression shows its error), sees it fire, disables it, adds and
// deletes another. Then the operator signs in: File push is all the
// navigation offers of jobs, the push targets only the group, and the
// Client groups page answers Forbidden. Last a job-runner signs in: Jobs
// offers their client group only, `echo` runs on A and shows its output,
// and B reached by its tag is refused by the server, nothing run; on
// Schedules (they hold job-scheduler too) they see only their own and
// add one on their group.
// Prints one JSON line of results;
// exits 1 with the failed step on stderr otherwise. No console errors but
// the browser's lines for the refusals provoked on purpose.
import { Run, unlabelledControls } from './lib.mjs';

const run = new Run();
const { cfg, results } = run;

// the refusals provoked on purpose: the page shows them in words
const refusal = (m) => /Failed to load resource: the server responded with a status of (400|403|404|409)/.test(m.text());

const shot = (page, name) => run.shot(page, name, { fullPage: true });

async function open(page, label) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: label }).waitFor({ timeout: 20000 });
}

// every control has a label or text (as run.mjs checks on every page)
async function labelled(page) {
  const bare = await unlabelledControls(page);
  if (bare.length) throw new Error(`controls without a label: ${bare.join(' ')}`);
}

const alertText = async (scope) => (await scope.getByRole('alert').innerText()).replace(/\s+/g, ' ').trim();

await run.main(async (browser) => {
  const page = await run.newPage(browser, {}, refusal);
  const [A, B] = cfg.agents;

  run.step = 'sign in';
  await run.signIn(page, cfg.admin_user, cfg.admin_password);

  run.step = 'client groups: add one with agent A';
  await open(page, 'Client groups');
  await labelled(page);
  const newGroup = page.getByRole('form', { name: 'New client group' });
  await newGroup.getByLabel('Group name').fill(cfg.group);
  await newGroup.getByLabel(`${A} (online)`).check({ timeout: 20000 });
  await newGroup.getByRole('button', { name: 'Add client group' }).click();
  const groups = page.getByRole('table', { name: 'Client groups' });
  const row = groups.getByRole('row').filter({ hasText: cfg.group });
  await row.getByRole('list', { name: `Agents of ${cfg.group}` }).getByText(A).waitFor({ timeout: 20000 });

  run.step = 'client groups: the same name again is refused';
  await newGroup.getByLabel('Group name').fill(cfg.group);
  await newGroup.getByLabel(`${A} (online)`).check();
  await newGroup.getByRole('button', { name: 'Add client group' }).click();
  await newGroup.getByRole('alert').waitFor({ timeout: 20000 });
  results.group_refused = await alertText(newGroup);

  run.step = 'client groups: add B, remove A';
  await row.getByLabel(`Add agent to ${cfg.group}`).selectOption(B);
  await row.getByRole('button', { name: 'Add', exact: true }).click();
  await row.getByRole('button', { name: `Remove ${B} from ${cfg.group}` }).waitFor({ timeout: 20000 });
  await row.getByRole('button', { name: `Remove ${A} from ${cfg.group}` }).click();
  await row.getByRole('button', { name: `Remove ${A} from ${cfg.group}` }).waitFor({ state: 'detached', timeout: 20000 });
  results.group_agents = (await row.getByRole('list', { name: `Agents of ${cfg.group}` }).getByRole('listitem').allInnerTexts())
    .map((t) => t.replace('×', '').trim());
  results.group_members = (await row.locator('td[data-label="Members now"]').innerText()).trim();
  await shot(page, 'client-groups');

  run.step = 'job roles: a user who does not exist is refused';
  await open(page, 'Job roles');
  await labelled(page);
  const grant = page.getByRole('form', { name: 'Grant a job role' });
  await grant.getByLabel('Client group').selectOption(cfg.group);
  await grant.getByLabel('User name').fill(`nobody-${cfg.group}`);
  await grant.getByLabel('Role').selectOption('job-pusher');
  await grant.getByRole('button', { name: 'Grant job role' }).click();
  await page.getByRole('alert').first().waitFor({ timeout: 20000 });
  results.grant_refused = await alertText(page.locator('section.page'));

  run.step = 'job roles: grant job-pusher and job-runner, revoke job-runner';
  const roles = page.getByRole('table', { name: 'Job roles' });
  for (const role of ['job-pusher', 'job-runner']) {
    await grant.getByLabel('User name').fill(cfg.operator.user);
    await grant.getByLabel('Role').selectOption(role);
    await grant.getByRole('button', { name: 'Grant job role' }).click();
    await roles.getByRole('row').filter({ hasText: role }).filter({ hasText: cfg.operator.user })
      .waitFor({ timeout: 20000 });
  }
  const runnerRow = roles.getByRole('row').filter({ hasText: 'job-runner' }).filter({ hasText: cfg.operator.user });
  await runnerRow.getByRole('button', { name: 'Revoke' }).click();
  await runnerRow.getByRole('button', { name: 'Confirm: revoke' }).click();
  await runnerRow.waitFor({ state: 'detached', timeout: 20000 });
  results.roles = (await roles.getByRole('row').filter({ hasText: cfg.operator.user }).allInnerTexts())
    .map((t) => t.replace(/\s+/g, ' ').trim());
  await shot(page, 'job-roles');

  run.step = 'file push: to the group, inside the push directory';
  await open(page, 'File push');
  await labelled(page);
  const push = page.getByRole('form', { name: 'Push a file' });
  const pushTo = async (dest) => {
    await push.getByLabel(`Client group ${cfg.group}`).check({ timeout: 20000 });
    await push.getByLabel('File', { exact: true }).setInputFiles({
      name: 'app.conf', mimeType: 'text/plain', buffer: Buffer.from(cfg.push.content),
    });
    await push.getByLabel('Destination path').fill(dest);
    await push.getByLabel('Mode').fill('0640');
    const before = page.url();
    await push.getByRole('button', { name: 'Push' }).click();
    await page.waitForURL((u) => u.href !== before && u.search.startsWith('?batch='), { timeout: 20000 });
    const out = page.getByRole('region', { name: 'Batch output' });
    await out.getByText('All 1 finished.').waitFor({ timeout: 30000 });
    const job = out.getByRole('region', { name: `Output of ${B}` });
    const why = job.locator('.why');
    return {
      heading: (await job.getByRole('heading').innerText()).trim(),
      why: (await why.count()) ? (await why.innerText()).trim() : '',
      command: (await out.locator('code').first().innerText()).trim(),
    };
  };
  results.push_ok = await pushTo(cfg.push.inside);
  await shot(page, 'push');

  run.step = 'file push: outside the push directory is refused';
  results.push_refused = await pushTo(cfg.push.outside);

  run.step = 'schedules: a bad cron expression shows its error';
  await open(page, 'Schedules');
  await labelled(page);
  const sched = page.getByRole('form', { name: 'New schedule' });
  await sched.getByLabel('Name', { exact: true }).fill(cfg.schedule);
  await sched.getByLabel('Cron').fill('61 * * * *');
  await sched.getByLabel('Command').fill('echo scheduled');
  await sched.getByLabel(`${A} (online)`).check({ timeout: 20000 });
  await sched.getByRole('button', { name: 'Add schedule' }).click();
  await sched.getByRole('alert').waitFor({ timeout: 20000 });
  results.cron_refused = await alertText(sched);

  run.step = 'schedules: add, see it fire, disable';
  await sched.getByLabel('Cron').fill('* * * * *');
  await sched.getByRole('button', { name: 'Add schedule' }).click();
  const table = page.getByRole('table', { name: 'Schedules' });
  const srow = table.getByRole('row').filter({ hasText: cfg.schedule });
  await srow.waitFor({ timeout: 20000 });
  results.schedule_new = {
    state: (await srow.locator('td[data-label="State"]').innerText()).trim(),
    next: (await srow.locator('td[data-label="Next run"]').innerText()).trim(),
  };
  // the page does not poll: reload until the last run shows (a minute is 2 s)
  for (let i = 0; i < 20; i++) {
    if (await srow.getByRole('link', { name: /fired; view the last/ }).count()) break;
    await page.waitForTimeout(1000);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Schedules' }).waitFor();
    await srow.waitFor({ timeout: 20000 });
  }
  results.schedule_last = (await srow.locator('td[data-label="Last run"]').innerText()).trim();
  await srow.getByRole('button', { name: `Disable ${cfg.schedule}` }).click();
  await srow.getByRole('button', { name: `Enable ${cfg.schedule}` }).waitFor({ timeout: 20000 });
  results.schedule_disabled = {
    state: (await srow.locator('td[data-label="State"]').innerText()).trim(),
    next: (await srow.locator('td[data-label="Next run"]').innerText()).trim(),
  };
  await shot(page, 'schedules');

  run.step = 'schedules: add another and delete it';
  await sched.getByLabel('Name', { exact: true }).fill(`${cfg.schedule}-gone`);
  await sched.getByLabel('Cron').fill('0 3 * * 1');
  await sched.getByLabel('Command').fill('true');
  await sched.getByLabel(`Client group ${cfg.group}`).check();
  await sched.getByRole('button', { name: 'Add schedule' }).click();
  const gone = table.getByRole('row').filter({ hasText: `${cfg.schedule}-gone` });
  await gone.waitFor({ timeout: 20000 });
  await gone.getByRole('button', { name: 'Delete' }).click();
  await gone.getByRole('button', { name: 'Confirm: delete' }).click();
  await gone.waitFor({ state: 'detached', timeout: 20000 });

  run.step = 'the operator: only File push, and only the group';
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('User name').waitFor({ timeout: 20000 });
  await run.signIn(page, cfg.operator.user, cfg.operator.password);
  const nav = page.getByRole('navigation', { name: 'Main' });
  results.operator_nav = (await nav.getByRole('link').allInnerTexts()).map((t) => t.trim());
  await open(page, 'File push');
  results.operator_choices = (await push.getByRole('group', { name: 'Targets' }).getByRole('checkbox').evaluateAll(
    (els) => els.map((e) => e.labels[0].textContent.trim()),
  ));
  results.operator_push = await pushTo(cfg.push.inside2);

  run.step = 'the operator: the Client groups page is refused by the server';
  await page.goto(`${cfg.url}/client-groups`);
  await page.getByRole('heading', { level: 1, name: 'Client groups' }).waitFor({ timeout: 20000 });
  await page.getByRole('alert').first().waitFor({ timeout: 20000 });
  results.operator_groups = (await page.getByRole('alert').first().innerText()).replace(/\s+/g, ' ').trim();

  run.step = 'the runner: Jobs on their client group';
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('User name').waitFor({ timeout: 20000 });
  await run.signIn(page, cfg.runner.user, cfg.runner.password);
  results.runner_nav = (await nav.getByRole('link').allInnerTexts()).map((t) => t.trim());
  await open(page, 'Jobs');
  await labelled(page);
  const form = page.getByRole('form', { name: 'Run a command' });
  const box = form.getByLabel(`Client group ${cfg.runner.group}`);
  await box.waitFor({ timeout: 20000 });
  results.runner_choices = (await form.getByRole('checkbox').evaluateAll(
    (els) => els.map((e) => e.labels[0].textContent.trim()),
  ));
  await box.check();
  await form.getByLabel('Command').fill(`echo ${cfg.runner.mark}`);
  await form.getByRole('button', { name: /^Run/ }).click();
  const out = page.getByRole('region', { name: 'Batch output' });
  await out.getByText('All 1 finished.').waitFor({ timeout: 30000 });
  const job = out.getByRole('region', { name: `Output of ${A}` });
  results.runner_run = {
    heading: (await job.getByRole('heading').innerText()).trim(),
    stdout: (await job.getByLabel(`stdout of ${A}`).innerText()).trim(),
  };

  run.step = 'the runner: an agent outside their group, by tag, is refused';
  await box.uncheck();
  await form.getByLabel('Or by tags').fill(cfg.runner.tag_b);
  await form.getByLabel('Command').fill(`echo not-${cfg.runner.mark}`);
  await form.getByRole('button', { name: /^Run/ }).click();
  await form.getByRole('alert').waitFor({ timeout: 20000 });
  results.runner_refused = await alertText(form);

  run.step = 'the runner (also job-scheduler): only their own schedules, on their group';
  await open(page, 'Schedules');
  const rsched = page.getByRole('form', { name: 'New schedule' });
  await rsched.getByLabel(`Client group ${cfg.runner.group}`).waitFor({ timeout: 20000 });
  results.runner_sched_choices = (await rsched.getByRole('group', { name: 'Targets' }).getByRole('checkbox').evaluateAll(
    (els) => els.map((e) => e.labels[0].textContent.trim()),
  ));
  await rsched.getByLabel('Name', { exact: true }).fill(`${cfg.schedule}-runner`);
  await rsched.getByLabel('Cron').fill('30 4 * * *');
  await rsched.getByLabel('Command').fill('true');
  await rsched.getByLabel(`Client group ${cfg.runner.group}`).check();
  await rsched.getByRole('button', { name: 'Add schedule' }).click();
  const rtable = page.getByRole('table', { name: 'Schedules' });
  await rtable.getByRole('row').filter({ hasText: `${cfg.schedule}-runner` }).waitFor({ timeout: 20000 });
  results.runner_schedules = (await rtable.locator('td[data-label="Name"]').allInnerTexts()).map((t) => t.trim());

});
