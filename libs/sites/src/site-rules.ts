import { X509Certificate } from 'node:crypto';
import type { CodebaseManifest, SQL_EVENTS } from '@app/codebases';

export type SqlEvent = (typeof SQL_EVENTS)[number];

/** The manifest's SQL templates of an event (file names). */
export function templatesOf(manifest: CodebaseManifest, event: SqlEvent): string[] {
  return (manifest.sql?.templates ?? []).filter((t) => t.event === event).map((t) => t.file);
}

/** Whether a PEM certificate covers every name (SAN, wildcards as TLS matches them). */
export function certificateCoversNames(pem: string | Buffer, names: readonly string[]): boolean {
  try {
    const cert = new X509Certificate(pem);
    return names.every((name) => cert.checkHost(name, { subject: 'never' }) !== undefined);
  } catch {
    return false;
  }
}
