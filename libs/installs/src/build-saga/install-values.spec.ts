import type { InstallSite } from '@app/catalog';
import { siteValues } from './install-values.js';

const site = (over: Partial<InstallSite> = {}): InstallSite =>
  ({ hostname: 'www.shop.example', secureHostname: null, relUrl: '/', secureRelUrl: '/', sslPemPath: null, sslKeyPath: null, ...over }) as InstallSite;

describe('siteValues', () => {
  it('gives http without a certificate, for the site and its secure hostname', () => {
    expect(siteValues(site({ secureHostname: 'secure.shop.example', relUrl: '/store/', secureRelUrl: '/s/' }))).toEqual({
      hostname: 'www.shop.example',
      secure_hostname: 'secure.shop.example',
      rel_url: '/store/',
      secure_rel_url: '/s/',
      scheme: 'http',
      secure_scheme: 'http',
      url: 'http://www.shop.example/store/',
      secure_url: 'http://secure.shop.example/s/',
    });
  });

  it('gives https once a certificate and its key are installed; the secure hostname defaults to the hostname', () => {
    expect(siteValues(site({ sslPemPath: '/etc/ssl/a.pem', sslKeyPath: '/etc/ssl/a.key' }))).toMatchObject({ scheme: 'https', secure_scheme: 'https', url: 'https://www.shop.example/', secure_url: 'https://www.shop.example/' });
    expect(siteValues(site({ sslPemPath: '/etc/ssl/a.pem' })).scheme).toBe('http');
  });
});
