// RDP recordings (.rdprec, docs/recordings.md) for the session page's
// player: parse() indexes the records of the whole file (throwing on a
// malformed one, stopping quietly at a tail cut short by a crash), and a
// Screen draws them on a canvas: a FRAME (a whole screen, where playback
// can start) or a RECT (a changed area), each RGB rows compressed with
// zlib, which the browser's DecompressionStream inflates. Seeking goes
// to the last FRAME at or before the time and draws forward from there.

const MAGIC = 'PCRDPv1\n';
export const T = { START: 1, FRAME: 2, RECT: 3, MOUSE: 4, KEY: 5, UNICODE: 6, END: 7, CLIP: 8 };
// a CLIP record's text at most (src/record/rdprec.h RDPREC_CLIP_MAX)
const CLIP_MAX = 4096;
const DIM_MAX = 8192;
const PIXELS_MAX = 8192 * 4608;

export class RecordingError extends Error {}

function dimsOk(w, h) {
  return w >= 1 && h >= 1 && w <= DIM_MAX && h <= DIM_MAX && w * h <= PIXELS_MAX;
}

// The records of buf (an ArrayBuffer): {records, width, height, startedAt,
// duration, end (the END record's text or null), cut (a tail was cut)}.
export function parse(buf) {
  const dv = new DataView(buf);
  const u8 = new Uint8Array(buf);
  if (u8.length < 8 || String.fromCharCode(...u8.subarray(0, 8)) !== MAGIC) {
    throw new RecordingError('not an RDP recording');
  }
  const records = [];
  let at = 8;
  let width = 0;
  let height = 0;
  let startedAt = null;
  let end = null;
  let cut = false;
  let last = 0;
  while (at < u8.length) {
    if (u8.length - at < 9) { cut = true; break; }
    const type = dv.getUint8(at);
    const ms = Math.max(dv.getUint32(at + 1), last);
    const n = dv.getUint32(at + 5);
    if (u8.length - at - 9 < n) { cut = true; break; }
    const p = at + 9;
    const r = { type, ms, p, n };
    const bad = (why) => new RecordingError(`malformed record at byte ${at}: ${why}`);
    switch (type) {
      case T.START:
        if (n !== 12) throw bad('START');
        width = dv.getUint16(p);
        height = dv.getUint16(p + 2);
        startedAt = dv.getUint32(p + 4) * 2 ** 32 + dv.getUint32(p + 8);
        break;
      case T.FRAME:
        if (n < 5) throw bad('FRAME');
        r.w = dv.getUint16(p);
        r.h = dv.getUint16(p + 2);
        if (!dimsOk(r.w, r.h)) throw bad('screen size');
        r.z = u8.subarray(p + 4, p + n);
        break;
      case T.RECT:
        if (n < 9) throw bad('RECT');
        r.x = dv.getUint16(p);
        r.y = dv.getUint16(p + 2);
        r.w = dv.getUint16(p + 4);
        r.h = dv.getUint16(p + 6);
        if (!dimsOk(r.w, r.h)) throw bad('rectangle size');
        r.z = u8.subarray(p + 8, p + n);
        break;
      case T.MOUSE:
        if (n !== 6) throw bad('MOUSE');
        r.flags = dv.getUint16(p);
        r.x = dv.getUint16(p + 2);
        r.y = dv.getUint16(p + 4);
        break;
      case T.KEY:
      case T.UNICODE:
        if (n !== 4) throw bad('KEY');
        r.flags = dv.getUint16(p);
        r.code = dv.getUint16(p + 2);
        break;
      case T.CLIP:
        // clipboard text that crossed: direction (0 to the target, 1 to
        // the client), UTF-8 text
        if (n < 1 || n - 1 > CLIP_MAX || u8[p] > 1) throw bad('CLIP');
        r.toClient = u8[p] === 1;
        r.text = new TextDecoder().decode(u8.subarray(p + 1, p + n));
        break;
      case T.END:
        end = new TextDecoder().decode(u8.subarray(p, p + n));
        break;
      default:
        throw bad(`unknown type ${type}`);
    }
    last = ms;
    records.push(r);
    at = p + n;
  }
  if (!width && records.length) {
    const f = records.find((x) => x.type === T.FRAME);
    if (f) { width = f.w; height = f.h; }
  }
  const duration = records.length ? records[records.length - 1].ms : 0;
  return { records, width, height, startedAt, duration, end, cut };
}

async function inflate(z, want) {
  const stream = new Blob([z]).stream().pipeThrough(new DecompressionStream('deflate'));
  const out = new Uint8Array(await new Response(stream).arrayBuffer());
  if (out.length !== want) throw new RecordingError('pixels do not fit their rectangle');
  return out;
}

function toImageData(rgb, w, h) {
  const img = new ImageData(w, h);
  const d = img.data;
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    d[j] = rgb[i];
    d[j + 1] = rgb[i + 1];
    d[j + 2] = rgb[i + 2];
    d[j + 3] = 255;
  }
  return img;
}

// Draws a parsed recording on a canvas. Calls are serialised: each
// waits for the one before (inflating is asynchronous).
export class Screen {
  constructor(canvas, rec) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.rec = rec;
    this.next = 0; // index of the next record to draw
    this.mouse = null;
    this.keys = 0;
    this.chain = Promise.resolve();
    canvas.width = rec.width || 1;
    canvas.height = rec.height || 1;
  }

  async draw(r) {
    if (r.type === T.FRAME) {
      const rgb = await inflate(r.z, r.w * r.h * 3);
      if (this.canvas.width !== r.w || this.canvas.height !== r.h) {
        this.canvas.width = r.w;
        this.canvas.height = r.h;
      }
      this.ctx.putImageData(toImageData(rgb, r.w, r.h), 0, 0);
    } else if (r.type === T.RECT) {
      if (r.x + r.w > this.canvas.width || r.y + r.h > this.canvas.height) {
        throw new RecordingError('a rectangle lies off the screen');
      }
      const rgb = await inflate(r.z, r.w * r.h * 3);
      this.ctx.putImageData(toImageData(rgb, r.w, r.h), r.x, r.y);
    } else if (r.type === T.MOUSE) {
      this.mouse = { x: r.x, y: r.y };
    } else if (r.type === T.KEY || r.type === T.UNICODE) {
      this.keys += 1;
    }
  }

  // Draws every record up to time ms (from the last FRAME at or before it
  // when going back, or far ahead).
  seek(ms) {
    this.chain = this.chain.then(async () => {
      const rs = this.rec.records;
      let k = -1;
      for (let i = 0; i < rs.length && rs[i].ms <= ms; i++) {
        if (rs[i].type === T.FRAME) k = i;
      }
      const back = this.next > 0 && rs[this.next - 1].ms > ms;
      if (back || (k >= this.next)) {
        this.next = Math.max(k, 0);
        if (k < 0) {
          // before the first screen: nothing drawn yet
          this.ctx.fillStyle = '#000';
          this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
        }
        this.keys = rs.slice(0, this.next).filter((r) => r.type === T.KEY || r.type === T.UNICODE).length;
        this.mouse = null;
        for (let i = this.next - 1; i >= 0; i--) {
          if (rs[i].type === T.MOUSE) { this.mouse = { x: rs[i].x, y: rs[i].y }; break; }
        }
      }
      while (this.next < rs.length && rs[this.next].ms <= ms) {
        await this.draw(rs[this.next]);
        this.next += 1;
      }
    });
    return this.chain;
  }
}
