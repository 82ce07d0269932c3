import type { CodebaseManifest } from './manifest.js';

/** An entry of the checkout, relative to its root: `d` directory, `f` file, `l` symlink. */
export interface CheckoutEntry {
  type: 'd' | 'f' | 'l';
  path: string;
}

/** How a home is built from a checkout: every path relative, the home's and the checkout's. */
export interface TreePlan {
  /** Real directories of the home, parents first. */
  dirs: string[];
  /** Symlinks: `path` in the home points to `target` in the checkout. */
  links: { path: string; target: string }[];
  /** Copied from the checkout, recursively. */
  copies: string[];
  /** Created empty, owned by the web server's user. */
  writable: string[];
  /** Rendered from templates. */
  rendered: string[];
}

const ancestors = (path: string): string[] => {
  const parts = path.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
};
const under = (path: string, parent: string) => path === parent || path.startsWith(`${parent}/`);

/**
 * The minimal symlink cover (SPEC.md): a directory of the home is real only
 * when something below it is copied, writable, rendered, linked elsewhere,
 * excluded, or declared real; everything else is one symlink into the
 * shared checkout, at the highest level possible.
 */
export function planTree(manifest: CodebaseManifest, checkout: readonly CheckoutEntry[]): TreePlan {
  const copies = [...manifest.copy];
  const writable = [...(manifest.writable ?? [])];
  const rendered = (manifest.templates ?? []).map((t) => t.target);
  const links = (manifest.links ?? []).map((l) => ({ path: l.path, target: l.target }));
  const excluded = manifest.exclude ?? [];
  const handled = [...copies, ...writable, ...rendered, ...links.map((l) => l.path), ...excluded];

  const real = new Set<string>();
  for (const p of handled) for (const a of ancestors(p)) real.add(a);
  for (const p of manifest.real ?? []) {
    real.add(p);
    for (const a of ancestors(p)) real.add(a);
  }
  // A directory that must be real cannot also be handled whole (copied, excluded...): the handling wins for its subtree.
  for (const p of handled) for (const r of [...real]) if (under(r, p)) real.delete(r);

  const children = new Map<string, CheckoutEntry[]>();
  for (const entry of checkout) {
    const parent = entry.path.includes('/') ? entry.path.slice(0, entry.path.lastIndexOf('/')) : '';
    const list = children.get(parent) ?? [];
    list.push(entry);
    children.set(parent, list);
  }
  const isHandled = (path: string) => handled.some((h) => under(path, h));
  const dirs: string[] = [];
  const planned: { path: string; target: string }[] = [];
  const walk = (dir: string) => {
    for (const entry of [...(children.get(dir) ?? [])].sort((a, b) => (a.path < b.path ? -1 : 1))) {
      if (isHandled(entry.path)) continue;
      if (entry.type === 'd' && real.has(entry.path)) {
        dirs.push(entry.path);
        walk(entry.path);
      } else {
        planned.push({ path: entry.path, target: entry.path });
      }
    }
  };
  walk('');
  // Real directories the checkout lacks (a writable dir's parent that exists only in the home).
  for (const r of [...real].sort()) if (!dirs.includes(r)) dirs.push(r);
  dirs.sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1));
  return { dirs, links: [...planned, ...links], copies, writable, rendered };
}
