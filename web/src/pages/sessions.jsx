// The session report with filters, and one session's page: its report
// row, its recording played in the page (asciinema-player for terminal
// sessions, a canvas player of our own for RDP sessions' .rdprec, both
// fed by GET /sessions/{id}/recording) or its file-transfer records
// (JSON lines).
import { useEffect, useRef, useState } from 'preact/hooks';
import * as AsciinemaPlayer from 'asciinema-player';
import 'asciinema-player/dist/bundle/asciinema-player.css';
import { api, enc, list } from '../api.js';
import { parse, Screen, T } from '../rdprec.js';
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

const SPEEDS = [['1', '1×'], ['2', '2×'], ['4', '4×'], ['8', '8×']];

function secs(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

// An RDP recording on a canvas: play/pause, a slider to seek (to the
// last whole screen before the time, then forward), speed; the pointer
// as a dot; how many keys were recorded (the profile's record_input).
function RdpPlayer({ buf }) {
  const canvas = useRef(null);
  const screen = useRef(null);
  const [rec, setRec] = useState(null);
  const [error, setError] = useState(null);
  const [pos, setPos] = useState(0);
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState('1');
  const [drawn, setDrawn] = useState(0);
  const [mouse, setMouse] = useState(null);
  const [keys, setKeys] = useState(0);
  // bumped by every user action: a playback tick that fires before the
  // effect's cleanup (effects run after paint) must not undo a seek
  const gen = useRef(0);

  useEffect(() => {
    try {
      const r = parse(buf);
      screen.current = new Screen(canvas.current, r);
      setRec(r);
      setPos(0);
      setPlaying(true);
    } catch (e) {
      setError(e);
    }
  }, [buf]);

  const show = (ms) => screen.current.seek(ms).then(() => {
    setDrawn(screen.current.next);
    setMouse(screen.current.mouse);
    setKeys(screen.current.keys);
  }).catch((e) => { setError(e); setPlaying(false); });

  useEffect(() => {
    if (!rec) return undefined;
    show(pos);
    return undefined;
  }, [rec, pos]);

  useEffect(() => {
    if (!rec || !playing) return undefined;
    const t0 = performance.now();
    const p0 = pos >= rec.duration ? 0 : pos;
    const mine = gen.current;
    let id = 0;
    const tick = () => {
      if (gen.current !== mine) return;
      const p = Math.min(rec.duration, p0 + (performance.now() - t0) * Number(speed));
      setPos(p);
      if (p >= rec.duration) setPlaying(false);
      else id = setTimeout(tick, 100);
    };
    id = setTimeout(tick, 0);
    return () => clearTimeout(id);
  }, [rec, playing, speed]);

  if (error) return <ErrorText error={error} />;
  const w = rec ? canvas.current.width : 1;
  const h = rec ? canvas.current.height : 1;
  return (
    <div class="rdp-player">
      <div class="controls">
        <button type="button" class="primary" disabled={!rec} onClick={() => { gen.current += 1; setPlaying(!playing); }}>
          {playing ? 'Pause' : 'Play'}</button>
        <input type="range" aria-label="Position" min="0" max={rec ? rec.duration : 0} step="1"
          value={pos} disabled={!rec}
          onInput={(ev) => { gen.current += 1; setPlaying(false); setPos(Number(ev.currentTarget.value)); }} />
        <span class="muted" aria-label="Time">{secs(pos)} / {secs(rec ? rec.duration : 0)}</span>
        <Select label="Speed" value={speed} onInput={(v) => { gen.current += 1; setSpeed(v); }} options={SPEEDS} />
      </div>
      <div class="rdp-screen">
        <canvas ref={canvas} aria-label="RDP recording" data-drawn={drawn} />
        {mouse && <span class="rdp-pointer" style={{ left: `${(100 * mouse.x) / w}%`, top: `${(100 * mouse.y) / h}%` }} />}
      </div>
      {rec && rec.records.some((r) => r.type === T.CLIP) && (
        <div class="rdp-clips">
          <h4>Clipboard</h4>
          <ul aria-label="Clipboard copies">
            {rec.records.filter((r) => r.type === T.CLIP).map((r) => (
              <li key={r.ms + r.text}>
                <button type="button" onClick={() => { gen.current += 1; setPlaying(false); setPos(r.ms); }}>{secs(r.ms)}</button>
                {r.toClient ? ' target → client: ' : ' client → target: '}
                <code>{r.text}</code>
              </li>
            ))}
          </ul>
        </div>
      )}
      {rec && (
        <p class="muted">
          {rec.width}×{rec.height}
          {rec.startedAt ? ` · started ${fmtTime(rec.startedAt)}` : ''}
          {` · ${keys} key event${keys === 1 ? '' : 's'} so far`}
          {rec.end !== null ? ` · ended: ${rec.end}` : ' · cut short (no end record)'}
        </p>
      )}
    </div>
  );
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
  const isRdp = s.recording_path.endsWith('.rdprec');
  const url = `/sessions/${s.id}/recording`;
  const load = () => run(async () => setContent(isRdp ? await api.bytes(url) : await api.text(url)));
  let what = 'File-transfer record';
  if (isCast) what = 'Terminal recording';
  if (isRdp) what = 'RDP recording';
  let shown = null;
  if (content !== null) {
    if (isRdp) shown = <RdpPlayer buf={content} />;
    else if (isCast) shown = <Player cast={content} />;
    else shown = <Transfers text={content} />;
  }
  return (
    <>
      <p class="muted">{what}{s.recording_size ? ` · ${fmtBytes(s.recording_size)}` : ''} · SHA-256 <code>{s.recording_sha256 || '–'}</code></p>
      {content === null && (
        <button type="button" class="primary" onClick={load} disabled={busy}>
          {isCast || isRdp ? 'Play recording' : 'Show file transfers'}</button>
      )}
      <ErrorText error={error} />
      {shown}
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
