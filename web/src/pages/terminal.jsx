// The browser terminal: a shell on an asset in the page (xterm.js), over
// the WebSocket /api/v1/terminal (docs/api.md). The server opens the
// session through the SSH proxy itself, so it is authorized, relayed,
// reported and recorded like a native one; a TOTP prompt of the login is
// asked here, in a small form. Terminal bytes travel in binary frames,
// everything else as JSON text messages.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { token } from '../api.js';
import { useLocation } from '../router.js';
import { Page, useId } from '../ui.jsx';

const PROTOCOL = 'portcullis-terminal.v1';

// xterm.js writes its computed CSS (cell size, colours, scrollbar) into
// <style> elements, which the page's Content-Security-Policy refuses
// (style-src 'self', no inline styles). While the terminal is being
// built, a <style> it creates becomes an inert <template> whose text
// goes into a constructed stylesheet adopted by the document: the same
// rules, through the CSSOM, which the policy allows.
function withConstructedStyles(fn) {
  const doc = document;
  const create = doc.createElement;
  doc.createElement = function createElement(tag, opts) {
    if (String(tag).toLowerCase() !== 'style') return create.call(this, tag, opts);
    const el = create.call(this, 'template', opts);
    const sheet = new CSSStyleSheet();
    let text = '';
    doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
    Object.defineProperty(el, 'textContent', {
      get: () => text,
      set: (v) => {
        text = String(v);
        sheet.replaceSync(text);
      },
    });
    const remove = el.remove.bind(el);
    el.remove = () => {
      doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
      remove();
    };
    return el;
  };
  try {
    return fn();
  } finally {
    doc.createElement = create;
  }
}

function statusWords(status, exit) {
  switch (status) {
    case 'connecting': return 'Connecting…';
    case 'prompt': return 'The login needs an answer.';
    case 'ready': return 'Connected.';
    case 'ended': return `The session ended (exit status ${exit}).`;
    case 'closed': return 'The connection closed.';
    default: return '';
  }
}

export function TerminalPage({ id }) {
  const { query } = useLocation();
  const name = query.get('name') || id;
  const box = useRef(null);
  const sock = useRef(null);
  const [run, setRun] = useState(0);
  const [status, setStatus] = useState('connecting');
  const [exit, setExit] = useState(null);
  const [error, setError] = useState('');
  const [prompt, setPrompt] = useState(null);
  const [answer, setAnswer] = useState('');
  const answerId = useId('answer');

  useEffect(() => {
    setStatus('connecting');
    setError('');
    setPrompt(null);
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', 'Liberation Mono', monospace",
      fontSize: 14,
      scrollback: 5000,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    withConstructedStyles(() => term.open(box.current));
    fit.fit();

    const bytes = new TextEncoder();
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/api/v1/terminal`, PROTOCOL);
    ws.binaryType = 'arraybuffer';
    sock.current = ws;
    let live = false;
    let over = false;
    const send = (obj) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
    };
    ws.onopen = () => send({ type: 'auth', token: token() || '', asset: id, cols: term.cols, rows: term.rows });
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') {
        term.write(new Uint8Array(ev.data));
        return;
      }
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (m.type === 'prompt') {
        setAnswer('');
        setPrompt({ text: m.text, echo: !!m.echo });
        setStatus('prompt');
      } else if (m.type === 'ready') {
        live = true;
        setPrompt(null);
        setStatus('ready');
        term.focus();
      } else if (m.type === 'exit') {
        over = true;
        live = false;
        setExit(m.status);
        setStatus('ended');
      } else if (m.type === 'error') {
        over = true;
        live = false;
        setPrompt(null);
        setError(m.detail || 'the terminal could not be opened');
        setStatus('error');
      }
    };
    ws.onclose = () => {
      live = false;
      if (!over) setStatus('closed');
    };
    const data = term.onData((d) => {
      if (live && ws.readyState === WebSocket.OPEN) ws.send(bytes.encode(d));
    });
    const binary = term.onBinary((d) => {
      if (!live || ws.readyState !== WebSocket.OPEN) return;
      const b = new Uint8Array(d.length);
      for (let i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 0xff;
      ws.send(b);
    });
    const resized = term.onResize(({ cols, rows }) => {
      if (live) send({ type: 'resize', cols, rows });
    });
    const refit = () => {
      try {
        fit.fit();
      } catch {
        // not laid out (hidden): the next resize fits it
      }
    };
    const watcher = new ResizeObserver(refit);
    watcher.observe(box.current);
    addEventListener('resize', refit);
    return () => {
      removeEventListener('resize', refit);
      watcher.disconnect();
      data.dispose();
      binary.dispose();
      resized.dispose();
      ws.onclose = null;
      ws.close();
      sock.current = null;
      term.dispose();
    };
  }, [id, run]);

  const submitAnswer = (ev) => {
    ev.preventDefault();
    const ws = sock.current;
    if (ws && ws.readyState === WebSocket.OPEN && answer) {
      ws.send(JSON.stringify({ type: 'answer', text: answer }));
      setPrompt(null);
      setAnswer('');
      setStatus('connecting');
    }
  };

  const done = status === 'ended' || status === 'closed' || status === 'error';
  return (
    <Page title={`Terminal: ${name}`} actions={<>
      {done && <button type="button" class="primary" onClick={() => setRun(run + 1)}>Connect again</button>}
      <a class="button-link" href={`/assets/${encodeURIComponent(id)}`}>Back to the asset</a>
    </>}>
      {error && (
        <p class="error" role="alert"><strong>The terminal could not be opened</strong>: {error}</p>
      )}
      <p class="muted term-status" role="status">{statusWords(status, exit)}</p>
      {prompt && (
        <form class="inline-form card term-prompt" onSubmit={submitAnswer}>
          <div class="field">
            <label for={answerId}>{prompt.text.trim() || 'Answer'}</label>
            <input id={answerId} type={prompt.echo ? 'text' : 'password'} value={answer}
              autocomplete="one-time-code" inputMode="numeric" autoFocus
              onInput={(e) => setAnswer(e.currentTarget.value)} />
          </div>
          <button type="submit" class="primary">Send</button>
        </form>
      )}
      <div class="terminal-box" ref={box} aria-label={`Terminal on ${name}`} />
    </Page>
  );
}
