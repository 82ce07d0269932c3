import { SAMPLE_MANIFEST, type CodebaseManifest } from '@app/codebases';
import { queryFlag } from './sites.controller.js';
import { namesOf } from './site-effects.js';
import { certificateCoversNames, templatesOf } from './site-rules.js';

describe('site operation rules', () => {
  it('a site claims its hostname and its own secure hostname, once each', () => {
    expect(namesOf({ hostname: 'a.example.com', secureHostname: null })).toEqual(['a.example.com']);
    expect(namesOf({ hostname: 'a.example.com', secureHostname: 'a.example.com' })).toEqual(['a.example.com']);
    expect(namesOf({ hostname: 'a.example.com', secureHostname: 'secure.example.com' })).toEqual(['a.example.com', 'secure.example.com']);
  });

  it('finds the SQL templates of an event in the manifest', () => {
    const manifest = { ...SAMPLE_MANIFEST, sql: { ...SAMPLE_MANIFEST.sql!, templates: [...SAMPLE_MANIFEST.sql!.templates!, { event: 'add_site', file: 'a.sql' }, { event: 'add_site', file: 'b.sql' }] } } as CodebaseManifest;
    expect(templatesOf(manifest, 'add_site')).toEqual(['a.sql', 'b.sql']);
    expect(templatesOf(manifest, 'hostname_change')).toEqual([]);
    expect(templatesOf({ ...SAMPLE_MANIFEST, sql: undefined } as CodebaseManifest, 'install')).toEqual([]);
  });

  it('a certificate that does not parse covers nothing', () => {
    expect(certificateCoversNames('not a certificate', ['a.example.com'])).toBe(false);
    expect(certificateCoversNames(Buffer.alloc(0), [])).toBe(false);
  });

  it('reads a query flag as a boolean, passing anything else on for the DTO to refuse', () => {
    expect([queryFlag(undefined), queryFlag('true'), queryFlag('false'), queryFlag('yes')]).toEqual([undefined, true, false, 'yes']);
  });
});
