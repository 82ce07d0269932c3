import type { DataSource } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, ServerIp, SiteName, type Server, type SharedCodeGroup } from '@app/catalog';

/**
 * The installs already on the dispatchers before a bench measures anything:
 * `count` live paid installs, one site each on one of the shared IPs of
 * every dispatcher (as free installs share them: nginx binds one socket per
 * address), written in chunks straight into the catalog. Their homes do not
 * exist: they stand for the vhosts nginx loads, tests and reloads.
 * Names are `<prefix><n>`, hostnames `<prefix><n>.example.org`; returned in order.
 */
export async function seedBaseInstalls(ds: DataSource, dispatchers: Server[], group: SharedCodeGroup, count: number, prefix = 'base'): Promise<{ fsName: string; hostname: string }[]> {
  const seeded: { fsName: string; hostname: string }[] = [];
  const shared = await ds.getRepository(ServerIp).find({ where: { kind: 'shared' }, order: { id: 'ASC' } });
  const ipsOf = new Map(dispatchers.map((d) => [d.id, shared.filter((ip) => ip.serverId === d.id)]));
  for (const d of dispatchers) if (!ipsOf.get(d.id)!.length) throw new Error(`seedBaseInstalls: ${d.hostname} has no shared IP`);
  for (let start = 0; start < count; start += 500) {
    const names = Array.from({ length: Math.min(500, count - start) }, (_, k) => `${prefix}${start + k}`);
    await ds.transaction(async (m) => {
      await m.insert(Install, names.map((fs) => ({
        orderRef: `${prefix.toUpperCase()}-${fs}`, customerEmail: `${fs}@example.com`, license: 'paid', fsName: fs, dbName: `shop_${fs}`, dbUser: fs, dbPasswordEnc: 'unused',
        dbServerId: null, sharedCodeGroupId: group.id, masterServerId: dispatchers[0]!.id, status: 'live', statusReason: null,
      })) as never);
      const installs = await m.getRepository(Install).createQueryBuilder('i').where('i.fsName IN (:...names)', { names }).getMany();
      await m.insert(InstallServer, installs.flatMap((i) => dispatchers.map((d, k) => ({ installId: i.id, serverId: d.id, role: k === 0 ? 'master' : 'replica', weight: 1 }))) as never);
      await m.insert(InstallSite, installs.map((i) => ({ installId: i.id, hostname: `${i.fsName}.example.org`, secureHostname: null })) as never);
      const sites = await m.getRepository(InstallSite).createQueryBuilder('s').where('s.installId IN (:...ids)', { ids: installs.map((i) => i.id) }).getMany();
      await m.insert(SiteName, sites.map((s) => ({ installId: s.installId, installSiteId: s.id, name: s.hostname })) as never);
      await m.insert(InstallSiteIp, sites.flatMap((s, k) => dispatchers.map((d) => {
        const ips = ipsOf.get(d.id)!;
        return { installSiteId: s.id, serverIpId: ips[k % ips.length]!.id, serverId: d.id, exclusiveIpId: null };
      })) as never);
      seeded.push(...installs.map((i) => ({ fsName: i.fsName, hostname: `${i.fsName}.example.org` })));
    });
  }
  return seeded;
}
