// Draws the app icon, build/icons/icon.png (512×512): a weight matrix as a heat map on a dark
// rounded square, with a green check badge (every conversion is verified). Run it again after
// changing the drawing: node build/icons/make-icon.mjs
import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';

const SIZE = 512;
const SS = 4; // samples per pixel side, for smooth edges

/** Signed distance to a rounded rectangle centred at (cx, cy). */
function roundRect(x, y, cx, cy, hw, hh, r) {
  const qx = Math.abs(x - cx) - (hw - r);
  const qy = Math.abs(y - cy) - (hh - r);
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0) - r;
}

const mix = (a, b, t) => a.map((v, i) => v + (b[i] - v) * t);
const CELLS = [
  [0.9, 0.35, 0.6, 0.15],
  [0.25, 1.0, 0.45, 0.7],
  [0.55, 0.2, 0.85, 0.3],
  [0.1, 0.65, 0.4, 0.95],
];

/** The colour (RGBA 0..1) at a point, or null for transparent. */
function sample(x, y) {
  const c = SIZE / 2;
  if (roundRect(x, y, c, c, 232, 232, 96) > 0) return null;
  let col = mix([0.09, 0.13, 0.17], [0.12, 0.23, 0.3], y / SIZE); // background gradient
  const cell = 74;
  const gap = 14;
  const start = c - (4 * cell + 3 * gap) / 2 - 22;
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      const cx = start + j * (cell + gap) + cell / 2;
      const cy = start + i * (cell + gap) + cell / 2;
      if (roundRect(x, y, cx, cy, cell / 2, cell / 2, 14) <= 0) col = mix([0.16, 0.33, 0.42], [0.3, 0.85, 0.9], CELLS[i][j]);
    }
  }
  // the check badge, bottom right
  const bx = 372;
  const by = 372;
  const d = Math.hypot(x - bx, y - by);
  if (d <= 92) col = d > 80 ? [0.09, 0.13, 0.17] : [0.22, 0.78, 0.45];
  if (d <= 80) {
    const seg = (ax, ay, cx2, cy2) => {
      const vx = cx2 - ax,
        vy = cy2 - ay;
      const t = Math.max(0, Math.min(1, ((x - ax) * vx + (y - ay) * vy) / (vx * vx + vy * vy)));
      return Math.hypot(x - (ax + t * vx), y - (ay + t * vy));
    };
    if (Math.min(seg(bx - 40, by + 2, bx - 12, by + 32), seg(bx - 12, by + 32, bx + 42, by - 30)) <= 13) col = [1, 1, 1];
  }
  return [...col, 1];
}

const png = new PNG({ width: SIZE, height: SIZE });
for (let y = 0; y < SIZE; y++) {
  for (let x = 0; x < SIZE; x++) {
    const acc = [0, 0, 0, 0];
    for (let sy = 0; sy < SS; sy++) {
      for (let sx = 0; sx < SS; sx++) {
        const s = sample(x + (sx + 0.5) / SS, y + (sy + 0.5) / SS);
        if (!s) continue;
        for (let k = 0; k < 3; k++) acc[k] += s[k] * s[3];
        acc[3] += s[3];
      }
    }
    const i = (y * SIZE + x) * 4;
    const a = acc[3] / (SS * SS);
    for (let k = 0; k < 3; k++) png.data[i + k] = acc[3] ? Math.round((acc[k] / acc[3]) * 255) : 0;
    png.data[i + 3] = Math.round(a * 255);
  }
}
writeFileSync(new URL('./icon.png', import.meta.url), PNG.sync.write(png));
console.log('wrote build/icons/icon.png');
