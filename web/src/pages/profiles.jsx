// Access profiles: what kinds of sessions their users may open, whether
// they are recorded, and who they are assigned to.
import { useState } from 'preact/hooks';
import { api, enc, list } from '../api.js';
import { Check, Confirm, ErrorText, Field, Loading, Page, Select, Table, useAction, useLoad } from '../ui.jsx';

const SWITCHES = [
  ['shell', 'Shell'], ['exec', 'Exec'], ['sftp', 'SFTP'], ['scp', 'scp'],
  ['local_forward', 'Local forwarding (-L)'], ['remote_forward', 'Remote forwarding (-R)'],
  ['agent_forward', 'Agent forwarding'], ['x11', 'X11'], ['record_input', 'Record input'],
];
// RDP virtual channels (docs/security.md "RDP virtual channels")
const RDP_SWITCHES = [
  ['rdp', 'RDP sessions'], ['rdp_clipboard_text', 'Clipboard (text, no files)'], ['rdp_clipboard_files', 'Files on the clipboard'],
  ['rdp_audio', 'Audio out'], ['rdp_drive', 'Drive redirection'], ['rdp_printer', 'Printer redirection'],
];
const DEFAULTS = {
  name: '', native: 'allow', shell: true, exec: true, sftp: true, scp: true, local_forward: false,
  remote_forward: false, agent_forward: false, x11: false, record_input: false,
  rdp: true, rdp_clipboard_text: true, rdp_clipboard_files: false, rdp_audio: true, rdp_drive: false, rdp_printer: false,
  max_session_minutes: '0', idle_timeout_minutes: '0',
};

function fromProfile(p) {
  const f = { ...DEFAULTS, name: p.name, native: p.native_session || p.native || 'allow' };
  for (const [k] of [...SWITCHES, ...RDP_SWITCHES]) if (typeof p[k] === 'boolean') f[k] = p[k];
  f.max_session_minutes = String(p.max_session_minutes ?? 0);
  f.idle_timeout_minutes = String(p.idle_timeout_minutes ?? 0);
  return f;
}

function ProfileForm({ initial, onSave, submitLabel }) {
  const [f, setF] = useState(initial);
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const { run, busy, error } = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    run(() => onSave({
      ...f, max_session_minutes: Number(f.max_session_minutes || 0), idle_timeout_minutes: Number(f.idle_timeout_minutes || 0),
    }));
  };
  return (
    <form class="grid-form" onSubmit={submit}>
      <Field label="Name" value={f.name} onInput={set('name')} required />
      <Select label="Native sessions" value={f.native} onInput={set('native')}
        options={[['deny', 'deny'], ['allow', 'allow'], ['record', 'allow and record']]} />
      <fieldset class="switches">
        <legend>Channels</legend>
        {SWITCHES.map(([k, l]) => <Check key={k} label={l} checked={f[k]} onInput={set(k)} />)}
      </fieldset>
      <fieldset class="switches">
        <legend>RDP</legend>
        {RDP_SWITCHES.map(([k, l]) => <Check key={k} label={l} checked={f[k]} onInput={set(k)} />)}
      </fieldset>
      <Field label="Max session minutes (0: no limit)" type="number" min="0" value={f.max_session_minutes} onInput={set('max_session_minutes')} />
      <Field label="Idle timeout minutes (0: none)" type="number" min="0" value={f.idle_timeout_minutes} onInput={set('idle_timeout_minutes')} />
      <ErrorText error={error} />
      <div class="form-actions"><button type="submit" class="primary" disabled={busy}>{submitLabel}</button></div>
    </form>
  );
}

// Who the profile is assigned to (GET .../assignments), then the form
// that assigns and unassigns; the list reloads after each change.
function Assign({ profile }) {
  const [kind, setKind] = useState('user');
  const [who, setWho] = useState('');
  const act = useAction();
  const [done, setDone] = useState('');
  const path = `/access-profiles/${enc(profile.name)}/assignments`;
  const holders = useLoad(async () => (await list(path)).data, [path]);
  const assign = (ev) => {
    ev.preventDefault();
    act.run(async () => {
      await api.post(path, { [kind]: who });
      setDone(`Assigned to ${kind} ${who}.`);
      holders.reload();
    });
  };
  const unassign = () => act.run(async () => {
    await api.del(`${path}/${kind}/${enc(who)}`);
    setDone(`Unassigned from ${kind} ${who}.`);
    holders.reload();
  });
  return (
    <form class="inline-form" onSubmit={assign} aria-label={`Assign ${profile.name}`}>
      <span class="assignees" aria-label={`${profile.name} is assigned to`}>
        {holders.data && (holders.data.length === 0 ? 'Assigned to nobody'
          : `Assigned to ${holders.data.map((a) => `${a.kind} ${a.name}`).join(', ')}`)}
      </span>
      <Select label="To" value={kind} onInput={setKind} options={['user', 'group']} />
      <Field label="Name" value={who} onInput={setWho} required />
      <button type="submit" class="small" disabled={act.busy}>Assign</button>
      <button type="button" class="small" disabled={act.busy || !who} onClick={unassign}>Unassign</button>
      <span role="status">{done}</span>
      <ErrorText error={act.error} />
    </form>
  );
}

export function Profiles() {
  const profiles = useLoad(async () => (await list('/access-profiles', { sort: 'name' })).data);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState(null);
  const del = useAction();
  const create = async (f) => {
    await api.post('/access-profiles', f);
    setCreating(false);
    profiles.reload();
  };
  const save = (p) => async (f) => {
    const body = { ...f };
    if (body.name === p.name) delete body.name;
    await api.patch(`/access-profiles/${enc(p.name)}`, body);
    setEditing(null);
    profiles.reload();
  };
  return (
    <Page title="Access profiles" actions={
      <button type="button" class="primary" aria-expanded={creating ? 'true' : 'false'} onClick={() => setCreating(!creating)}>
        {creating ? 'Close the form' : 'New profile'}</button>}>
      {creating && <div class="card"><h2>New profile</h2><ProfileForm initial={DEFAULTS} onSave={create} submitLabel="Create profile" /></div>}
      {profiles.loading && !profiles.data && <Loading />}
      <ErrorText error={profiles.error || del.error} />
      {profiles.data && (
        <Table caption="Access profiles" rows={profiles.data}
          columns={[
            { label: 'Name', key: 'name' },
            { label: 'Native', render: (p) => p.native_session || p.native },
            { label: 'Allows', render: (p) => SWITCHES.filter(([k]) => p[k] === true && k !== 'record_input').map(([, l]) => l).join(', ') || '–' },
            { label: 'Limits', render: (p) => `${p.max_session_minutes || '∞'} min, idle ${p.idle_timeout_minutes || '∞'}` },
            { label: 'Assign', render: (p) => <Assign profile={p} /> },
            { label: '', render: (p) => (
              <span class="row-actions">
                <button type="button" class="small" onClick={() => setEditing(editing === p.id ? null : p.id)}>Edit</button>
                <Confirm label="Delete" busy={del.busy}
                  onConfirm={() => del.run(async () => { await api.del(`/access-profiles/${enc(p.name)}`); profiles.reload(); })} />
              </span>) },
          ]} />
      )}
      {profiles.data && editing && profiles.data.filter((p) => p.id === editing).map((p) => (
        <div class="card" key={p.id}><h2>Edit {p.name}</h2><ProfileForm initial={fromProfile(p)} onSave={save(p)} submitLabel="Save profile" /></div>
      ))}
    </Page>
  );
}
