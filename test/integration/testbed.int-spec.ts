import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { createTestDatabase } from '../support/mariadb.js';
import { reloadNginx, testNginxConfig } from '../support/nginx.js';
import { generateEd25519Key, knownHostsLine, runSsh } from '../support/sshd.js';
import { readTestbed, type TestbedState } from '../support/testbed.js';

// Proves the servers global setup starts are real and usable the way the
// engine's integration tests use them.
describe('testbed', () => {
  let testbed: TestbedState;

  beforeAll(() => {
    testbed = readTestbed();
  });

  describe('MariaDB', () => {
    it('gives a test its own database to write to, and drops it', async () => {
      const database = await createTestDatabase('testbed');
      try {
        expect(database.name).toMatch(/^testbed_[a-z0-9_]+$/);
        expect(await schemaExists(database.name)).toBe(true);
        const connection = await mysql.createConnection(database.url);
        try {
          await connection.query('CREATE TABLE greetings (id INT PRIMARY KEY, text VARCHAR(50) NOT NULL)');
          await connection.query('INSERT INTO greetings (id, text) VALUES (?, ?)', [1, 'hello']);
          const [rows] = await connection.query<RowDataPacket[]>('SELECT id, text FROM greetings');
          expect(rows).toEqual([{ id: 1, text: 'hello' }]);
        } finally {
          await connection.end();
        }
      } finally {
        await database.drop();
      }
      expect(await schemaExists(database.name)).toBe(false);
    });
  });

  describe('sshd', () => {
    it('runs a command for a client holding the key, with the host key pinned', async () => {
      expect(await runSsh(testbed.sshd, ['echo', 'canary'])).toBe('canary\n');
      expect(testbed.sshd.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    });

    it('refuses to talk to the server when another host key is pinned', async () => {
      const dir = await mkdtemp(join(testbed.dir, 'wrong-host-key-'));
      try {
        const otherHostKey = await generateEd25519Key(join(dir, 'other_host_ed25519'), 'other-host');
        const knownHostsPath = join(dir, 'known_hosts');
        await writeFile(knownHostsPath, knownHostsLine(testbed.sshd.port, otherHostKey));

        await expect(runSsh(testbed.sshd, ['echo', 'canary'], { knownHostsPath })).rejects.toThrow(
          /Host key verification failed/,
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });

  describe('nginx', () => {
    it('serves a vhost written to conf.d once reloaded', async () => {
      const root = await mkdtemp(join(testbed.dir, 'vhost-root-'));
      // mkdtemp makes it 0700; the workers run as www-data.
      await chmod(root, 0o755);
      await writeFile(join(root, 'hello.txt'), 'hello from testbed.example\n', { mode: 0o644 });
      const vhost = join(testbed.nginx.confDir, 't.conf');
      await writeFile(
        vhost,
        `server {\n  listen 127.0.0.1:${testbed.nginx.port};\n  server_name testbed.example;\n  root ${root};\n}\n`,
      );
      try {
        await testNginxConfig();
        await reloadNginx();

        expect(await get('testbed.example', '/hello.txt')).toEqual({
          status: 200,
          body: 'hello from testbed.example\n',
        });
        expect((await get('unknown.example', '/hello.txt')).status).toBe(404);
      } finally {
        await rm(vhost, { force: true });
        await reloadNginx();
        await rm(root, { recursive: true, force: true });
      }
      expect((await get('testbed.example', '/hello.txt')).status).toBe(404);
    });
  });

  async function schemaExists(name: string): Promise<boolean> {
    const { mariadb } = testbed;
    const connection = await mysql.createConnection({
      host: mariadb.host,
      port: mariadb.port,
      user: mariadb.adminUser,
      password: mariadb.adminPassword,
    });
    try {
      const [rows] = await connection.query<RowDataPacket[]>(
        'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
        [name],
      );
      return rows.length === 1;
    } finally {
      await connection.end();
    }
  }

  function get(hostHeader: string, path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: testbed.nginx.port, path, headers: { Host: hostHeader }, timeout: 5_000 },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          res.on('error', reject);
        },
      );
      req.once('timeout', () => req.destroy(new Error(`GET http://${hostHeader}${path} timed out`)));
      req.once('error', reject);
      req.end();
    });
  }
});
