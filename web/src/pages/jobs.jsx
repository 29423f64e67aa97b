// Jobs (issue 14): run a command on the agents checked in the list (or on
// every agent with a tag) and watch each agent's output arrive; the
// history of jobs and batches with their results. Routes: POST
// /api/v1/jobs (a batch), GET /api/v1/jobs (newest first, no output), GET
// /api/v1/jobs/{id}/stream (a running job's output pushed as it arrives)
// and GET /api/v1/jobs/{id} (its state; polled when no stream opens).
// /jobs?batch=ID and /jobs?job=ID show one batch or job; /jobs?agent=ID
// (an agent's page links it) starts with that agent checked. A user who
// is not an administrator but holds job-runner (powers.js) targets the
// client groups they hold it on.
import { useEffect, useState } from 'preact/hooks';
import { api, enc, events, list } from '../api.js';
import { navigate, useLocation } from '../router.js';
import { jobGroups, powers } from '../powers.js';
import { Check, ErrorText, Field, Loading, Page, Table, fmtTime, useAction, useLoad } from '../ui.jsx';
import { splitList } from './agents.jsx';

const POLL_MS = 700;
const finished = (j) => j.status !== 'queued' && j.status !== 'running';

export function jobResult(j) {
  let s = j.status;
  if (j.exit_code !== null && j.exit_code !== undefined) s += ` (exit ${j.exit_code})`;
  else if (j.signal) s += ` (signal ${j.signal})`;
  return s;
}

export function Jobs({ me }) {
  const { query } = useLocation();
  const batch = query.get('batch');
  const job = query.get('job');
  const p = powers(me);
  const agents = useLoad(async () => (p.config ? (await list('/agents', { sort: 'name' })).data : []));
  const groups = useLoad(async () => (p.admin
    ? (await list('/client-groups', { sort: 'name' })).data.map((g) => g.name)
    : jobGroups(me, 'job-runner')));
  const history = useLoad(async () => (await list('/jobs')).data);
  const names = {};
  for (const a of agents.data || []) names[a.id] = a.name || a.id;
  return (
    <Page title="Jobs">
      <p class="muted">A command runs on each chosen agent as that agent's own config allows
        (docs/agent.md, "Commands"); a refused job says which rule refused it.</p>
      <RunForm agents={agents} groups={groups.data || []} agent={query.get('agent')} onStarted={(b) => { history.reload(); navigate(`/jobs?batch=${enc(b)}`); }} />
      {(batch || job) && (
        <Output key={batch || job} batch={batch} job={job} names={names} onDone={history.reload} />
      )}
      <History history={history} names={names} />
    </Page>
  );
}

function RunForm({ agents, groups, agent, onStarted }) {
  const [picked, setPicked] = useState(() => (agent ? { [agent]: true } : {}));
  const [pickedGroups, setPickedGroups] = useState({});
  const [f, setF] = useState({ tags: '', command: '', cwd: '', timeout: '60' });
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const act = useAction();
  const rows = agents.data || [];
  const chosen = rows.filter((a) => picked[a.id]).map((a) => a.id);
  const chosenGroups = groups.filter((g) => pickedGroups[g]);
  const submit = (ev) => {
    ev.preventDefault();
    act.run(async () => {
      const body = { command: f.command };
      if (chosen.length) body.agents = chosen;
      if (chosenGroups.length) body.groups = chosenGroups;
      if (f.tags.trim()) body.tags = splitList(f.tags);
      if (f.cwd.trim()) body.cwd = f.cwd.trim();
      if (Number(f.timeout)) body.timeout = Number(f.timeout);
      const doc = await api.post('/jobs', body);
      onStarted(doc.data.batch);
    });
  };
  return (
    <form class="card" onSubmit={submit} aria-label="Run a command">
      <h2>Run a command</h2>
      <fieldset>
        <legend>Agents</legend>
        {agents.loading && !agents.data && <Loading what="Loading agents" />}
        <ErrorText error={agents.error} />
        {agents.data && rows.length === 0 && !groups.length && <p class="muted">No agent has connected yet.</p>}
        <div class="agent-picks">
          {rows.map((a) => (
            <Check key={a.id} checked={!!picked[a.id]}
              label={`${a.name || a.id} (${a.online ? 'online' : 'offline'}${a.tags && a.tags.length ? `; ${a.tags.join(', ')}` : ''})`}
              onInput={(v) => setPicked({ ...picked, [a.id]: v })} />
          ))}
        </div>
        {rows.length > 0 && (
          <p class="row-actions">
            <button type="button" class="small"
              onClick={() => setPicked(Object.fromEntries(rows.filter((a) => a.online).map((a) => [a.id, true])))}>
              Select all online</button>
            <button type="button" class="small" onClick={() => setPicked({})}>Select none</button>
          </p>
        )}
        {groups.length > 0 && (
          <div class="agent-picks" role="group" aria-label="Client groups">
            {groups.map((g) => (
              <Check key={g} checked={!!pickedGroups[g]} label={`Client group ${g}`}
                onInput={(v) => setPickedGroups({ ...pickedGroups, [g]: v })} />
            ))}
          </div>
        )}
      </fieldset>
      <div class="inline-form">
        <Field label="Or by tags" value={f.tags} onInput={set('tags')} placeholder="prod, web"
          hint="every agent with one of them" />
        <Field label="Command" value={f.command} onInput={set('command')} required placeholder="uptime" />
        <Field label="Working directory (optional)" value={f.cwd} onInput={set('cwd')} placeholder="/tmp" />
        <Field label="Timeout (seconds)" type="number" min="1" max="86400" value={f.timeout} onInput={set('timeout')} />
        <button type="submit" class="primary" disabled={act.busy || (!chosen.length && !chosenGroups.length && !f.tags.trim())}>
          Run{chosen.length ? ` on ${chosen.length} agent${chosen.length > 1 ? 's' : ''}` : ''}</button>
      </div>
      <ErrorText error={act.error} />
    </form>
  );
}

// One batch's (or one job's) jobs with their output. A running job's
// output is pushed (GET /api/v1/jobs/{id}/stream, at most STREAMS at
// once: the rest are polled every POLL_MS and take a stream when one
// frees); when its stream ends or breaks, one GET reads the final state,
// and a job still running then (or whose stream cannot be opened) is
// polled. A finished job is not asked for again.
const STREAMS = 4;

export function Output({ batch, job, names, onDone }) {
  const [jobs, setJobs] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stopped = false;
    let timer = null;
    let drawTimer = null;
    let done = false;
    const known = {};
    const streams = {}; // id: AbortController of its open stream
    const noStream = {}; // ids whose stream ended, broke or never opened
    let ids = batch ? null : [job];
    const show = () => {
      if (stopped || !ids) return;
      const got = ids.map((id) => known[id]).filter(Boolean);
      got.sort((a, b) => a.agent.localeCompare(b.agent));
      setJobs(got);
      if (!done && got.length === ids.length && got.every(finished)) {
        done = true;
        clearTimeout(timer);
        onDone();
      }
    };
    const draw = () => { // many events, one render
      if (!drawTimer) drawTimer = setTimeout(() => { drawTimer = null; show(); }, 30);
    };
    const fetchJob = async (id) => {
      const d = await api.get(`/jobs/${enc(id)}`);
      if (!stopped) known[id] = d.data;
    };
    const watch = (id) => {
      const ctl = new AbortController();
      streams[id] = ctl;
      // the stream's pieces by byte offset; they start at byte 0, so
      // together they are the whole output (GET's, until they catch up)
      const parts = { stdout: new Map(), stderr: new Map() };
      const base = { stdout: known[id].stdout || '', stderr: known[id].stderr || '' };
      const text = (s) => {
        const t = [...parts[s].entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]).join('');
        return t.length >= base[s].length ? t : base[s];
      };
      const onEvent = (name, d) => {
        if (stopped) return;
        const j = known[id];
        if (name === 'job' || name === 'end') {
          known[id] = { ...j, ...d, stdout: j.stdout, stderr: j.stderr };
        } else if (name === 'output' && parts[d.stream] && !parts[d.stream].has(d.offset)) {
          parts[d.stream].set(d.offset, d.text);
          // output means it runs, whatever the first event said
          known[id] = { ...j, status: j.status === 'queued' ? 'running' : j.status, [d.stream]: text(d.stream) };
        }
        draw();
      };
      events(`/jobs/${enc(id)}/stream`, onEvent, ctl.signal).then(() => null, (e) => e).then(async (e) => {
        delete streams[id];
        if (stopped) return;
        noStream[id] = true; // not again: if it still runs, it is polled
        try { // the final state (or, after a break, where it is now)
          await fetchJob(id);
        } catch (e2) {
          if (!stopped) setError(e2);
        }
        fill();
        show();
      });
    };
    // open streams for unfinished jobs while there are free ones
    const fill = () => {
      if (stopped) return;
      for (const id of ids) {
        if (Object.keys(streams).length >= STREAMS) break;
        const j = known[id];
        if (j && !finished(j) && !streams[id] && !noStream[id]) watch(id);
      }
    };
    const tick = async () => {
      try {
        // a batch's jobs are all made when it starts: list them once
        if (!ids) ids = (await list('/jobs', { filter: { batch } })).data.map((j) => j.id);
        if (!ids.length) throw new Error('no job of this batch is among the latest 1,000');
        await Promise.all(ids.filter((id) => !streams[id] && !(known[id] && finished(known[id])))
          .map(fetchJob));
        if (stopped) return;
        setError(null);
        fill();
        show();
        if (done) return;
      } catch (e) {
        if (stopped) return;
        setError(e);
        if (e.status === undefined || (e.status >= 400 && e.status < 500)) return;
      }
      timer = setTimeout(tick, POLL_MS);
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(drawTimer);
      for (const ctl of Object.values(streams)) ctl.abort();
    };
  }, [batch, job]);
  const running = jobs && !jobs.every(finished);
  return (
    <div class="card" role="region" aria-label={batch ? 'Batch output' : 'Job output'}>
      <h2>{batch ? `Batch ${batch}` : `Job ${job}`}</h2>
      {jobs && jobs[0] && <p><code>{jobs[0].command}</code> started by {jobs[0].started_by}</p>}
      <p class="muted" aria-live="polite">{!jobs ? 'Loading…' : running
        ? `${jobs.filter(finished).length} of ${jobs.length} finished; the output follows as it arrives…`
        : `All ${jobs.length} finished.`}</p>
      <ErrorText error={error} />
      {jobs && jobs.map((j) => <JobOutput key={j.id} j={j} name={names[j.agent] || j.agent} />)}
    </div>
  );
}

function JobOutput({ j, name }) {
  return (
    <section class="job-output" aria-label={`Output of ${name}`}>
      <h3>{name}: <span class={`job-status ${j.status.replace(/\s/g, '-')}`}>{jobResult(j)}</span></h3>
      <p class="muted">job {j.id}, started {fmtTime(j.started)}{j.finished ? `, finished ${fmtTime(j.finished)}` : ''}</p>
      {j.why && <p class="why">{j.why}</p>}
      <pre class="out stdout" aria-label={`stdout of ${name}`}>{j.stdout}</pre>
      {j.stderr && <pre class="out stderr" aria-label={`stderr of ${name}`}>{j.stderr}</pre>}
    </section>
  );
}

// The job list grouped by batch (a job of its own is its own group),
// newest first.
function History({ history, names }) {
  const groups = [];
  const byKey = {};
  for (const j of history.data || []) {
    const key = j.batch || j.id;
    if (!byKey[key]) {
      byKey[key] = { key, batch: j.batch, first: j, jobs: [] };
      groups.push(byKey[key]);
    }
    byKey[key].jobs.push(j);
  }
  const summary = (g) => {
    const n = {};
    for (const j of g.jobs) n[j.status] = (n[j.status] || 0) + 1;
    return Object.entries(n).map(([s, c]) => `${c} ${s}`).join(', ');
  };
  const who = (g) => {
    const xs = g.jobs.map((j) => names[j.agent] || j.agent);
    return xs.length > 3 ? `${xs.slice(0, 3).join(', ')} and ${xs.length - 3} more` : xs.join(', ');
  };
  return (
    <div class="card">
      <h2>History</h2>
      {history.loading && !history.data && <Loading />}
      <ErrorText error={history.error} />
      {history.data && (
        <Table caption="Job history" rows={groups.slice(0, 100)} rowKey="key" empty="No job has run yet."
          columns={[
            { label: 'Started', render: (g) => fmtTime(g.jobs[g.jobs.length - 1].started || g.first.started) },
            { label: 'By', render: (g) => g.first.started_by },
            { label: 'Command', render: (g) => <code>{g.first.command}</code> },
            { label: 'Agents', render: who },
            { label: 'Result', render: (g) => (g.jobs.length === 1 ? jobResult(g.first) : summary(g)) },
            { label: '', render: (g) => (
              <a href={g.batch ? `/jobs?batch=${enc(g.batch)}` : `/jobs?job=${enc(g.first.id)}`}>View output</a>) },
          ]} />
      )}
    </div>
  );
}
