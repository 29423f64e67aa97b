// The rest of jobs on agents (issue 14; docs/web.md): schedules
// (/schedules), client groups (/client-groups), file push (/push) and job
// roles (/job-roles). Routes: /api/v1/schedules (PATCH {enabled}),
// /api/v1/client-groups (and .../{id}/agents), POST /api/v1/jobs with
// file_base64 and dest, /api/v1/job-roles. A user who is not an
// administrator sees only what their job roles open (powers.js), and
// targets only the client groups they hold the role on; the server
// checks every request regardless.
import { useState } from 'preact/hooks';
import { api, enc, list } from '../api.js';
import { navigate, useLocation } from '../router.js';
import { jobGroups, powers } from '../powers.js';
import {
  Check, Confirm, ErrorText, Field, Loading, Page, Select, Table, fmtBytes, fmtTime, useAction, useLoad,
} from '../ui.jsx';
import { splitList } from './agents.jsx';
import { Output } from './jobs.jsx';

const JOB_ROLES = ['job-runner', 'job-pusher', 'job-scheduler'];

// The agents (if the user may list them) and the client groups (every
// one for an administrator; else those of the user's role) a form may
// target.
function useTargets(me, role) {
  const p = powers(me);
  const agents = useLoad(async () => (p.config ? (await list('/agents', { sort: 'name' })).data : []));
  const groups = useLoad(async () => (p.admin
    ? (await list('/client-groups', { sort: 'name' })).data
    : jobGroups(me, role).map((name) => ({ name }))));
  return { agents, groups, admin: p.admin };
}

const emptyTargets = () => ({ agents: {}, groups: {}, tags: '' });

function targetBody(t) {
  const body = {};
  const agents = Object.keys(t.agents).filter((k) => t.agents[k]);
  const groups = Object.keys(t.groups).filter((k) => t.groups[k]);
  if (agents.length) body.agents = agents;
  if (groups.length) body.groups = groups;
  if (t.tags.trim()) body.tags = splitList(t.tags);
  return body;
}

const hasTargets = (t) => Object.keys(targetBody(t)).length > 0;

function Targets({ targets, value, onChange, legend = 'Targets' }) {
  const { agents, groups, admin } = targets;
  const setIn = (k, id) => (v) => onChange({ ...value, [k]: { ...value[k], [id]: v } });
  return (
    <fieldset>
      <legend>{legend}</legend>
      <ErrorText error={agents.error || groups.error} />
      {(agents.data || []).length > 0 && (
        <div class="agent-picks" role="group" aria-label="Agents">
          {agents.data.map((a) => (
            <Check key={a.id} checked={!!value.agents[a.id]} onInput={setIn('agents', a.id)}
              label={`${a.name || a.id} (${a.online ? 'online' : 'offline'})`} />
          ))}
        </div>
      )}
      {groups.data && groups.data.length === 0 && (
        <p class="muted">{admin ? 'No client group yet.' : 'You hold this role on no client group.'}</p>
      )}
      {(groups.data || []).length > 0 && (
        <div class="agent-picks" role="group" aria-label="Client groups">
          {groups.data.map((g) => (
            <Check key={g.name} checked={!!value.groups[g.name]} onInput={setIn('groups', g.name)}
              label={`Client group ${g.name}${g.members ? ` (${g.members.length} agent${g.members.length === 1 ? '' : 's'})` : ''}`} />
          ))}
        </div>
      )}
      {admin && (
        <Field label="Or by tags" value={value.tags} onInput={(v) => onChange({ ...value, tags: v })}
          placeholder="prod, web" hint="every agent with one of them" />
      )}
    </fieldset>
  );
}

// --- schedules -------------------------------------------------------------

const targetsText = (s) => [
  ...(s.agents || []),
  ...(s.tags || []).map((t) => `tag ${t}`),
  ...(s.groups || []).map((g) => `group ${g}`),
].join(', ');

export function Schedules({ me }) {
  const schedules = useLoad(async () => (await list('/schedules', { sort: 'name' })).data);
  const targets = useTargets(me, 'job-scheduler');
  const [t, setT] = useState(emptyTargets);
  const [f, setF] = useState({ name: '', cron: '', command: '', timeout: '60' });
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const add = useAction();
  const change = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      const body = { name: f.name.trim(), cron: f.cron.trim(), command: f.command, ...targetBody(t) };
      if (Number(f.timeout)) body.timeout = Number(f.timeout);
      await api.post('/schedules', body);
      setF({ ...f, name: '', cron: '', command: '' });
      setT(emptyTargets());
      schedules.reload();
    });
  };
  const toggle = (s) => change.run(async () => {
    await api.patch(`/schedules/${enc(s.id)}`, { enabled: !s.enabled });
    schedules.reload();
  });
  const remove = (s) => change.run(async () => {
    await api.del(`/schedules/${enc(s.id)}`);
    schedules.reload();
  });
  return (
    <Page title="Schedules">
      <p class="muted">A command on agents at the minutes of a cron expression, in the server's time
        zone; each firing is a batch of jobs. Firings missed while the server was down are counted,
        never run late; a disabled schedule neither fires nor misses.</p>
      <form class="card" onSubmit={submit} aria-label="New schedule">
        <h2>New schedule</h2>
        <div class="inline-form">
          <Field label="Name" value={f.name} onInput={set('name')} required maxLength={64} />
          <Field label="Cron" value={f.cron} onInput={set('cron')} required placeholder="*/15 * * * *"
            hint="5 fields: minute hour day-of-month month day-of-week" />
          <Field label="Command" value={f.command} onInput={set('command')} required placeholder="uptime" />
          <Field label="Timeout (seconds)" type="number" min="1" max="86400" value={f.timeout} onInput={set('timeout')} />
        </div>
        <Targets targets={targets} value={t} onChange={setT} />
        <button type="submit" class="primary" disabled={add.busy || !hasTargets(t)}>Add schedule</button>
        <ErrorText error={add.error} />
      </form>
      {schedules.loading && !schedules.data && <Loading />}
      <ErrorText error={schedules.error || change.error} />
      {schedules.data && (
        <Table caption="Schedules" rows={schedules.data} empty="No schedule yet."
          columns={[
            { label: 'Name', key: 'name' },
            { label: 'Cron', render: (s) => <code>{s.cron}</code> },
            { label: 'Targets', render: targetsText },
            { label: 'Command', render: (s) => <code>{s.command || `[${s.interpreter} script]`}</code> },
            { label: 'State', render: (s) => (s.enabled ? 'enabled' : 'disabled') },
            { label: 'Next run', render: (s) => (s.next_run
              ? <span>{s.next_run.replace('T', ' ')}<br /><small class="muted">UTC {s.next_run_utc}</small></span>
              : '–') },
            { label: 'Last run', render: (s) => (s.last_batch
              ? <a href={`/jobs?batch=${enc(s.last_batch)}`}>{`${s.fired} fired; view the last`}</a>
              : `${s.fired} fired`) },
            { label: 'Missed', render: (s) => (s.missed
              ? `${s.missed} (last found ${fmtTime(s.last_missed)})` : '0') },
            { label: '', render: (s) => (
              <span class="row-actions">
                <button type="button" class="small" disabled={change.busy} onClick={() => toggle(s)}
                  aria-label={`${s.enabled ? 'Disable' : 'Enable'} ${s.name}`}>{s.enabled ? 'Disable' : 'Enable'}</button>
                <Confirm label="Delete" busy={change.busy} onConfirm={() => remove(s)} />
              </span>) },
          ]} />
      )}
    </Page>
  );
}

// --- client groups -----------------------------------------------------------

const RULE_FIELDS = [['name', 'Match names'], ['hostname', 'Match hostnames'], ['os', 'Match OS'],
  ['tags', 'Match tags'], ['id', 'Match IDs']];

function GroupAgents({ group, agents, busy, onAdd, onRemove }) {
  const [pick, setPick] = useState('');
  const choices = (agents || []).filter((a) => !(group.agents || []).includes(a.id));
  return (
    <div>
      <ul class="chips" aria-label={`Agents of ${group.name}`}>
        {(group.agents || []).map((id) => (
          <li key={id}>{id}{' '}
            <button type="button" class="small" aria-label={`Remove ${id} from ${group.name}`} disabled={busy}
              onClick={() => onRemove(id)}>×</button>
          </li>
        ))}
      </ul>
      {choices.length > 0 && (
        <form class="inline-form" aria-label={`Add an agent to ${group.name}`}
          onSubmit={(ev) => { ev.preventDefault(); if (pick) onAdd(pick); setPick(''); }}>
          <Select label={`Add agent to ${group.name}`} value={pick} onInput={setPick}
            options={[['', '(choose)'], ...choices.map((a) => [a.id, a.name || a.id])]} />
          <button type="submit" class="small" disabled={busy || !pick}>Add</button>
        </form>
      )}
    </div>
  );
}

function rulesText(rules) {
  const parts = Object.entries(rules || {}).map(([k, v]) => `${k}: ${v.join(', ')}`);
  return parts.length ? parts.join('; ') : '–';
}

export function ClientGroups({ me }) {
  const admin = powers(me).admin;
  const groups = useLoad(async () => (await list('/client-groups', { sort: 'name' })).data);
  const agents = useLoad(async () => (await list('/agents', { sort: 'name' })).data);
  const [f, setF] = useState({ name: '', description: '' });
  const [picked, setPicked] = useState({});
  const [rules, setRules] = useState({});
  const add = useAction();
  const change = useAction();
  const names = {};
  for (const a of agents.data || []) names[a.id] = a.name || a.id;
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      const body = { name: f.name.trim() };
      if (f.description.trim()) body.description = f.description.trim();
      const ids = Object.keys(picked).filter((k) => picked[k]);
      if (ids.length) body.agents = ids;
      const r = {};
      for (const [k] of RULE_FIELDS) if ((rules[k] || '').trim()) r[k] = splitList(rules[k]);
      if (Object.keys(r).length) body.rules = JSON.stringify(r);
      await api.post('/client-groups', body);
      setF({ name: '', description: '' });
      setPicked({});
      setRules({});
      groups.reload();
    });
  };
  const member = (g, id, adding) => change.run(async () => {
    if (adding) await api.post(`/client-groups/${enc(g.id)}/agents`, { agent: id });
    else await api.del(`/client-groups/${enc(g.id)}/agents/${enc(id)}`);
    groups.reload();
  });
  return (
    <Page title="Client groups">
      <p class="muted">Agents by ID (static) or by patterns on their names, hostnames, OS, tags and
        IDs (dynamic, shell globs; every field given must match). Targets for jobs, file pushes and
        schedules, and the scope of the job roles.</p>
      {admin && <form class="card" onSubmit={submit} aria-label="New client group">
        <h2>New client group</h2>
        <div class="inline-form">
          <Field label="Group name" value={f.name} onInput={(v) => setF({ ...f, name: v })} required maxLength={64} />
          <Field label="Description" value={f.description} onInput={(v) => setF({ ...f, description: v })} />
        </div>
        <fieldset>
          <legend>Static agents</legend>
          <ErrorText error={agents.error} />
          <div class="agent-picks">
            {(agents.data || []).map((a) => (
              <Check key={a.id} checked={!!picked[a.id]} label={`${a.name || a.id} (${a.online ? 'online' : 'offline'})`}
                onInput={(v) => setPicked({ ...picked, [a.id]: v })} />
            ))}
          </div>
        </fieldset>
        <fieldset>
          <legend>Dynamic rules (comma-separated patterns)</legend>
          <div class="inline-form">
            {RULE_FIELDS.map(([k, label]) => (
              <Field key={k} label={label} value={rules[k] || ''} onInput={(v) => setRules({ ...rules, [k]: v })}
                placeholder={k === 'os' ? 'linux' : 'web-*'} />
            ))}
          </div>
        </fieldset>
        <button type="submit" class="primary" disabled={add.busy}>Add client group</button>
        <ErrorText error={add.error} />
      </form>}
      {groups.loading && !groups.data && <Loading />}
      <ErrorText error={groups.error || change.error} />
      {groups.data && (
        <Table caption="Client groups" rows={groups.data} empty="No client group yet."
          columns={[
            { label: 'Group', render: (g) => <span>{g.name}{g.description ? <><br /><small class="muted">{g.description}</small></> : ''}</span> },
            { label: 'Static agents', render: (g) => (
              <GroupAgents group={g} agents={agents.data} busy={change.busy}
                onAdd={(id) => member(g, id, true)} onRemove={(id) => member(g, id, false)} />) },
            { label: 'Rules', render: (g) => rulesText(g.rules) },
            { label: 'Members now', render: (g) => ((g.members || []).length
              ? g.members.map((id) => names[id] || id).join(', ') : 'none') },
            { label: '', render: (g) => (
              <Confirm label="Delete" busy={change.busy}
                onConfirm={() => change.run(async () => { await api.del(`/client-groups/${enc(g.id)}`); groups.reload(); })} />) },
          ]} />
      )}
    </Page>
  );
}

// --- file push ---------------------------------------------------------------

const PUSH_MAX = 16 * 1024 * 1024;

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.onerror = () => reject(r.error || new Error('cannot read the file'));
    r.readAsDataURL(file);
  });
}

export function FilePush({ me }) {
  const { query } = useLocation();
  const batch = query.get('batch');
  const targets = useTargets(me, 'job-pusher');
  const [t, setT] = useState(emptyTargets);
  const [file, setFile] = useState(null);
  const [f, setF] = useState({ dest: '', mode: '0644', owner: '', group: '', overwrite: false });
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const act = useAction();
  const names = {};
  for (const a of targets.agents.data || []) names[a.id] = a.name || a.id;
  const submit = (ev) => {
    ev.preventDefault();
    act.run(async () => {
      if (!file) throw new Error('choose a file');
      if (file.size > PUSH_MAX) throw new Error(`the file is larger than ${fmtBytes(PUSH_MAX)}`);
      if (!/^[0-7]{3,4}$/.test(f.mode)) throw new Error('mode: octal, like 0644');
      const body = { ...targetBody(t), dest: f.dest.trim(), mode: parseInt(f.mode, 8),
        overwrite: f.overwrite, file_base64: await readBase64(file) };
      if (f.owner.trim()) body.owner = f.owner.trim();
      if (f.group.trim()) body.group = f.group.trim();
      const doc = await api.post('/jobs', body);
      navigate(`/push?batch=${enc(doc.data.batch)}`);
    });
  };
  const fileId = 'push-file';
  return (
    <Page title="File push">
      <p class="muted">Copies a file to each chosen agent, checked by its SHA-256 on arrival; each
        agent accepts files only into the directories its config lists (<code>file_push_dir</code>,
        none by default), and a refused push says why.</p>
      <form class="card" onSubmit={submit} aria-label="Push a file">
        <h2>Push a file</h2>
        <Targets targets={targets} value={t} onChange={setT} />
        <div class="inline-form">
          <div class="field">
            <label for={fileId}>File</label>
            <input id={fileId} type="file" required onChange={(e) => setFile(e.currentTarget.files[0] || null)} />
            {file && <small class="hint">{`${file.name}, ${fmtBytes(file.size)}`}</small>}
          </div>
          <Field label="Destination path" value={f.dest} onInput={set('dest')} required placeholder="/opt/deploy/app.conf" />
          <Field label="Mode" value={f.mode} onInput={set('mode')} pattern="[0-7]{3,4}" hint="octal" />
          <Field label="Owner (optional)" value={f.owner} onInput={set('owner')} />
          <Field label="Group (optional)" value={f.group} onInput={set('group')} />
          <Check label="Overwrite an existing file" checked={f.overwrite} onInput={set('overwrite')} />
        </div>
        <button type="submit" class="primary" disabled={act.busy || !hasTargets(t)}>Push</button>
        <ErrorText error={act.error} />
      </form>
      {batch && <Output key={batch} batch={batch} names={names} onDone={() => {}} />}
    </Page>
  );
}

// --- job roles ---------------------------------------------------------------

export function JobRoles({ me }) {
  const admin = powers(me).admin;
  const roles = useLoad(async () => (await list('/job-roles')).data);
  const groups = useLoad(async () => (await list('/client-groups', { sort: 'name' })).data);
  const [f, setF] = useState({ kind: 'user', who: '', role: 'job-runner', group: '' });
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const add = useAction();
  const del = useAction();
  const cg = f.group || (groups.data && groups.data[0] ? groups.data[0].name : '');
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      await api.post('/job-roles', { [f.kind]: f.who.trim(), role: f.role, client_group: cg });
      setF({ ...f, who: '' });
      roles.reload();
    });
  };
  return (
    <Page title="Job roles">
      <p class="muted">Who may run commands (job-runner), push files (job-pusher) or make schedules
        (job-scheduler) on the agents of a client group, without being an administrator. A revoked
        role ends on the user's next request.</p>
      {admin && <form class="inline-form card" onSubmit={submit} aria-label="Grant a job role">
        <Select label="Grant to" value={f.kind} onInput={set('kind')} options={['user', 'group']} />
        <Field label={f.kind === 'user' ? 'User name' : 'Group name'} value={f.who} onInput={set('who')} required />
        <Select label="Role" value={f.role} onInput={set('role')} options={JOB_ROLES} />
        <Select label="Client group" value={cg} onInput={set('group')}
          options={(groups.data || []).map((g) => g.name)} />
        <button type="submit" class="primary" disabled={add.busy || !cg}>Grant job role</button>
      </form>}
      <ErrorText error={add.error || groups.error} />
      {groups.data && groups.data.length === 0 && <p class="muted">Make a client group first.</p>}
      {roles.loading && !roles.data && <Loading />}
      <ErrorText error={roles.error || del.error} />
      {roles.data && (
        <Table caption="Job roles" rows={roles.data} empty="No job role granted."
          columns={[
            { label: 'Role', key: 'role' },
            { label: 'Grantee', render: (r) => `${r.grantee} (${r.grantee_type})` },
            { label: 'Client group', key: 'client_group' },
            { label: '', render: (r) => (
              <Confirm label="Revoke" busy={del.busy}
                onConfirm={() => del.run(async () => { await api.del(`/job-roles/${enc(r.id)}`); roles.reload(); })} />) },
          ]} />
      )}
    </Page>
  );
}
