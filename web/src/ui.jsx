// Shared pieces of every page: loading state, the API's errors in words,
// labelled form fields, tables, the copy button.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

let uid = 0;
export function useId(prefix = 'f') {
  const ref = useRef(null);
  if (ref.current === null) ref.current = `${prefix}-${++uid}`;
  return ref.current;
}

// Runs load() now and on reload(); {data, error, loading, reload}.
export function useLoad(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const reload = useCallback(() => {
    const n = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(load)
      .then((data) => n === seq.current && setState({ data, error: null, loading: false }),
        (error) => n === seq.current && setState({ data: null, error, loading: false }));
  }, deps);
  useEffect(reload, [reload]);
  return { ...state, reload };
}

// An action (a form's submit, a button): {run, busy, error, setError}.
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = useCallback(async (fn) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { run, busy, error, setError };
}

export function ErrorText({ error }) {
  if (!error) return null;
  const title = error.title || 'Error';
  const detail = error.detail !== undefined ? error.detail : String(error.message || error);
  return (
    <p class="error" role="alert">
      <strong>{title}</strong>
      {detail ? `: ${detail}` : ''}
    </p>
  );
}

export function Loading({ what = 'Loading' }) {
  return <p class="muted" aria-live="polite">{what}…</p>;
}

export function Page({ title, actions, children }) {
  useEffect(() => {
    document.title = `${title} · Portcullis`;
  }, [title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-head">
        <h1 id="page-title" tabIndex={-1}>{title}</h1>
        {actions && <div class="page-actions">{actions}</div>}
      </header>
      {children}
    </section>
  );
}

export function Field({ label, hint, type = 'text', value, onInput, ...rest }) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {type === 'textarea' ? (
        <textarea id={id} value={value} onInput={(e) => onInput(e.currentTarget.value)} {...rest} />
      ) : (
        <input id={id} type={type} value={value}
          onInput={(e) => onInput(e.currentTarget.value)} {...rest} />
      )}
      {hint && <small class="hint">{hint}</small>}
    </div>
  );
}

export function Select({ label, value, onInput, options, ...rest }) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onInput(e.currentTarget.value)} {...rest}>
        {options.map((o) => {
          const [v, l] = Array.isArray(o) ? o : [o, o];
          return <option value={v} key={v}>{l}</option>;
        })}
      </select>
    </div>
  );
}

export function Check({ label, checked, onInput, ...rest }) {
  const id = useId();
  return (
    <div class="check">
      <input id={id} type="checkbox" checked={checked}
        onChange={(e) => onInput(e.currentTarget.checked)} {...rest} />
      <label for={id}>{label}</label>
    </div>
  );
}

// A table whose rows scroll sideways on a narrow screen.
export function Table({ columns, rows, empty = 'Nothing here yet.', caption, rowKey = 'id' }) {
  if (!rows || rows.length === 0) return <p class="muted">{empty}</p>;
  return (
    <div class="table-wrap" role="region" aria-label={caption || 'table'} tabIndex={0}>
      <table>
        {caption && <caption class="sr-only">{caption}</caption>}
        <thead>
          <tr>{columns.map((c) => <th scope="col" key={c.label}>{c.label}</th>)}</tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={r[rowKey] ?? i}>
              {columns.map((c) => <td key={c.label} data-label={c.label}>{c.render ? c.render(r) : fmt(r[c.key])}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function fmt(v) {
  if (v === null || v === undefined || v === '') return '–';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (Array.isArray(v)) return v.length ? v.join(', ') : '–';
  return String(v);
}

export function fmtTime(s) {
  if (!s) return '–';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < u.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? x : x.toFixed(1)} ${u[i]}`;
}

export function CopyButton({ text, label = 'Copy' }) {
  const [done, setDone] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('Copied');
    } catch {
      // No clipboard permission (plain HTTP off localhost): select the
      // text so the user can copy it by hand.
      setDone('Select and copy by hand');
    }
    setTimeout(() => setDone(''), 2500);
  };
  return (
    <span class="copy">
      <button type="button" class="small" onClick={copy}>{label}</button>
      <span class="copy-state" aria-live="polite">{done}</span>
    </span>
  );
}

// A labelled one-line value with a copy button (commands, tokens).
export function CodeLine({ label, text }) {
  return (
    <div class="codeline">
      {label && <div class="codeline-label">{label}</div>}
      <div class="codeline-row">
        <code>{text}</code>
        <CopyButton text={text} label={label ? `Copy ${label.toLowerCase()}` : 'Copy'} />
      </div>
    </div>
  );
}

export function Confirm({ label, onConfirm, danger = true, busy }) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return <button type="button" class={danger ? 'small danger' : 'small'} onClick={() => setAsking(true)}>{label}</button>;
  }
  return (
    <span class="confirm">
      <button type="button" class="small danger" disabled={busy}
        onClick={async () => { await onConfirm(); setAsking(false); }}>Confirm: {label.toLowerCase()}</button>
      <button type="button" class="small" onClick={() => setAsking(false)}>Cancel</button>
    </span>
  );
}
