// The session report with filters, and one session's page: its report
// row, its recording played in the page (asciinema-player, fed by GET
// /sessions/{id}/recording) or its file-transfer records (JSON lines).
import { useEffect, useRef, useState } from 'preact/hooks';
import * as AsciinemaPlayer from 'asciinema-player';
import 'asciinema-player/dist/bundle/asciinema-player.css';
import { api, enc, list } from '../api.js';
import { navigate, useLocation } from '../router.js';
import { ErrorText, Field, Loading, Page, Select, Table, fmt, fmtBytes, fmtTime, useAction, useLoad } from '../ui.jsx';

const PAGE = 50;
const KINDS = ['', 'shell', 'exec', 'sftp', 'scp', 'forward', 'rdp', 'tunnel'];
const RESULTS = [['', 'any'], ['ok', 'ok'], ['denied', 'denied'], ['error', 'error']];

export function Sessions() {
  const { query } = useLocation();
  const applied = {
    user: query.get('user') || '', asset: query.get('asset') || '', kind: query.get('kind') || '',
    result: query.get('result') || '',
  };
  const offset = Number(query.get('offset') || 0);
  const [f, setF] = useState(applied);
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const key = JSON.stringify([applied, offset]);
  const rows = useLoad(async () => list('/sessions', { limit: PAGE, offset, filter: applied }), [key]);
  const go = (filters, off) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (off) q.set('offset', String(off));
    const s = q.toString();
    navigate(`/sessions${s ? `?${s}` : ''}`);
  };
  const total = rows.data ? rows.data.meta.total : 0;
  return (
    <Page title="Sessions">
      <form class="inline-form card" onSubmit={(ev) => { ev.preventDefault(); go(f, 0); }} aria-label="Filter sessions">
        <Field label="User" value={f.user} onInput={set('user')} />
        <Field label="Asset (name)" value={f.asset} onInput={set('asset')} />
        <Select label="Kind" value={f.kind} onInput={set('kind')} options={KINDS.map((k) => [k, k || 'any'])} />
        <Select label="Result" value={f.result} onInput={set('result')} options={RESULTS} />
        <button type="submit" class="primary">Filter</button>
        <button type="button" onClick={() => { setF({ user: '', asset: '', kind: '', result: '' }); go({}, 0); }}>Clear</button>
      </form>
      {rows.loading && !rows.data && <Loading />}
      <ErrorText error={rows.error} />
      {rows.data && (
        <>
          <Table caption="Sessions" rows={rows.data.data} empty="No session matches."
            columns={[
              { label: 'Started', render: (r) => <a href={`/sessions/${r.id}`}>{fmtTime(r.started_at)}</a> },
              { label: 'User', key: 'user' },
              { label: 'Asset', key: 'asset' },
              { label: 'Kind', key: 'kind' },
              { label: 'Client', key: 'client' },
              { label: 'Result', render: (r) => r.result || 'open' },
              { label: 'Recording', render: (r) => (r.recording_path ? (r.recording_deleted_at ? 'deleted' : 'yes') : '–') },
            ]} />
          <div class="pager">
            <button type="button" disabled={offset === 0} onClick={() => go(applied, Math.max(0, offset - PAGE))}>Newer</button>
            <span>{total ? `${offset + 1}–${Math.min(offset + PAGE, total)} of ${total}` : ''}</span>
            <button type="button" disabled={offset + PAGE >= total} onClick={() => go(applied, offset + PAGE)}>Older</button>
          </div>
        </>
      )}
    </Page>
  );
}

function Player({ cast }) {
  const ref = useRef(null);
  useEffect(() => {
    const p = AsciinemaPlayer.create({ data: cast }, ref.current, {
      autoPlay: true, idleTimeLimit: 2, fit: 'width', terminalFontSize: 'small',
    });
    return () => p.dispose();
  }, [cast]);
  return <div class="player" ref={ref} aria-label="Recording player" />;
}

function Transfers({ text }) {
  const rows = text.split('\n').filter(Boolean).map((line, i) => {
    try {
      return { _i: i, ...JSON.parse(line) };
    } catch {
      return { _i: i, unreadable: line };
    }
  });
  const FIRST = ['time', 'op', 'path', 'bytes'];
  // the session's own ID is on every line: the page already says it
  const seen = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => k !== '_i' && k !== 'session');
  const keys = [...FIRST.filter((k) => seen.includes(k)), ...seen.filter((k) => !FIRST.includes(k))];
  return (
    <Table caption="File transfers" rows={rows} rowKey="_i" empty="No file was transferred."
      columns={keys.map((k) => ({
        label: k,
        render: (r) => {
          if (k === 'time') return fmtTime(r[k]);
          return typeof r[k] === 'object' && r[k] !== null ? JSON.stringify(r[k]) : fmt(r[k]);
        },
      }))} />
  );
}

function Recording({ s }) {
  const [content, setContent] = useState(null);
  const { run, busy, error } = useAction();
  if (!s.recording_path) return <p>This session was not recorded.</p>;
  if (s.recording_deleted_at) return <p>The recording was deleted on {fmtTime(s.recording_deleted_at)} (retention).</p>;
  const isCast = s.recording_path.endsWith('.cast');
  const load = () => run(async () => setContent(await api.text(`/sessions/${s.id}/recording`)));
  return (
    <>
      <p class="muted">{isCast ? 'Terminal recording' : 'File-transfer record'}{s.recording_size ? ` · ${fmtBytes(s.recording_size)}` : ''} · SHA-256 <code>{s.recording_sha256 || '–'}</code></p>
      {content === null && (
        <button type="button" class="primary" onClick={load} disabled={busy}>
          {isCast ? 'Play recording' : 'Show file transfers'}</button>
      )}
      <ErrorText error={error} />
      {content !== null && (isCast ? <Player cast={content} /> : <Transfers text={content} />)}
    </>
  );
}

export function SessionDetail({ id }) {
  const s = useLoad(async () => (await api.get(`/sessions/${enc(id)}`)).data, [id]);
  if (s.loading && !s.data) return <Page title="Session"><Loading /></Page>;
  if (s.error) return <Page title="Session"><ErrorText error={s.error} /><p><a href="/sessions">All sessions</a></p></Page>;
  const r = s.data;
  return (
    <Page title={`Session of ${r.user || '?'} on ${r.asset || '?'}`}>
      <p><a href="/sessions">← All sessions</a></p>
      <dl class="facts">
        <dt>ID</dt><dd><code>{r.id}</code></dd>
        <dt>Kind</dt><dd>{r.kind}</dd>
        <dt>Result</dt><dd>{r.result || 'open'}</dd>
        <dt>Started</dt><dd>{fmtTime(r.started_at)}</dd>
        <dt>Ended</dt><dd>{fmtTime(r.ended_at)}</dd>
        <dt>Client</dt><dd>{fmt(r.client)}</dd>
        <dt>Site / route</dt><dd>{fmt(r.site)} / {fmt(r.route)}</dd>
        <dt>Bytes</dt><dd>{fmtBytes(r.bytes_up)} up, {fmtBytes(r.bytes_down)} down</dd>
        <dt>Exit status</dt><dd>{fmt(r.exit_status)}</dd>
        <dt>Detail</dt><dd>{fmt(r.detail)}</dd>
      </dl>
      <div class="card">
        <h2>Recording</h2>
        <Recording s={r} />
      </div>
    </Page>
  );
}
