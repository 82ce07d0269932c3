import { createWriteStream } from 'node:fs';

/**
 * A chronological `shop_host` access log of about SIZE bytes over HOSTS
 * hosts (`task<n>.example.org`, as bench/tasks seeds them) and 1 % strangers,
 * a line every GAP_MS (default 60) ms: `node generate-access-log.js PATH HOSTS SIZE [GAP_MS]`.
 */
const [path, hostsText, sizeText, gapText] = process.argv.slice(2);
const hosts = Number(hostsText);
const size = Number(sizeText);
const gapMs = Number(gapText ?? 60);
if (!path || !(hosts > 0) || !(size > 0) || !(gapMs > 0)) throw new Error('usage: generate-access-log PATH HOSTS SIZE [GAP_MS]');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => String(n).padStart(2, '0');
const out = createWriteStream(path);
const start = Date.parse('2026-11-20T00:00:00Z');
let written = 0;
let n = 0;
while (written < size) {
  let chunk = '';
  for (let k = 0; k < 5000; k++, n++) {
    const at = new Date(start + n * gapMs);
    const stamp = `${pad(at.getUTCDate())}/${MONTHS[at.getUTCMonth()]}/${at.getUTCFullYear()}:${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())} +0000`;
    const host = n % 100 === 0 ? 'scanner.invalid' : `task${(n * 7919) % hosts}.example.org`;
    chunk += `${host} 198.51.100.${n % 250} [${stamp}] "GET /index.php?route=product/product&product_id=${n % 977} HTTP/1.1" ${n % 13 === 0 ? 404 : 200} ${(n * 31) % 60000}\n`;
  }
  const buf = Buffer.from(chunk);
  written += buf.length;
  if (!out.write(buf)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
}
await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
