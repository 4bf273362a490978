/**
 * What a user sees of a sandbox, as one comparable value: per namespace the links (name, MTU,
 * MAC, queue length, admin flags, master), addresses, routes of every table and qdiscs (`ip -j`,
 * `tc -j`), the sandbox host's whole nftables ruleset (`nft -j`, without handles), and the state
 * files under the sandbox's temp dir (without the bookkeeping: locks, pid files, sockets, logs,
 * host-local's last_reserved_ip). Tests take one before a step and compare after it to show that
 * the step changed nothing, or that DEL took back everything ADD made.
 *
 * Carrier and operational state are left out, and IPv6 link-local addresses with their local
 * routes (they all settle asynchronously, after DAD); so is everything a plugin keeps outside the
 * sandbox's namespaces and temp dir, which no plugin may touch.
 */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { type Sandbox, ipJson } from './sandbox.ts';
import { NFT } from './portmap-lib.ts';

const ADMIN_FLAGS = ['UP', 'PROMISC', 'ALLMULTI', 'NOARP'];
const LINK_LOCAL = /^fe[89ab][0-9a-f]:/i;
const BOOKKEEPING = /(^|\.)lock$|\.pid$|\.sock$|\.log$|^last_reserved_ip\./;

function withoutHandles(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutHandles);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (k !== 'handle') out[k] = withoutHandles(x);
    return out;
  }
  return v;
}

function files(dir: string, root = dir): string[] {
  let out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out = out.concat(files(p, root));
    else if (!BOOKKEEPING.test(e.name)) out.push(relative(root, p));
  }
  return out.sort();
}

/** The view of namespace `ns`: links, addresses, routes, qdiscs. */
export function netnsView(sb: Sandbox, ns: string): unknown {
  const links = ipJson(ns, 'link', 'show').map((l: any) => ({
    name: l.ifname, mtu: l.mtu, mac: l.address, txqlen: l.txqlen, master: l.master, flags: (l.flags as string[]).filter((f) => ADMIN_FLAGS.includes(f)),
  }));
  const addrs = ipJson(ns, 'addr', 'show').map((l: any) => ({
    name: l.ifname, addrs: (l.addr_info ?? []).filter((a: any) => !LINK_LOCAL.test(a.local)).map((a: any) => `${a.local}/${a.prefixlen}`).sort(),
  }));
  const routes = [...ipJson(ns, '-4', 'route', 'show', 'table', 'all'), ...ipJson(ns, '-6', 'route', 'show', 'table', 'all')]
    .filter((r: any) => !(r.table === 'local' && LINK_LOCAL.test(r.dst)))
    .map((r: any) => `${r.table ?? 'main'} ${r.type ?? ''} ${r.dst} ${r.gateway ?? ''} ${r.dev ?? ''} ${r.protocol ?? ''} ${r.metric ?? ''}`).sort();
  const tc = sb.exec(ns, 'tc', ['-j', 'qdisc', 'show']);
  const qdiscs = tc.status === 0 && tc.stdout.trim() ? JSON.parse(tc.stdout).map((q: any) => `${q.dev} ${q.kind} ${q.handle} ${q.parent ?? 'root'}`).sort() : [];
  return { links, addrs, routes, qdiscs };
}

/** The whole view: the host namespace, the given container namespaces, nftables, state files. */
export function snapshot(sb: Sandbox, containers: readonly string[]): unknown {
  const nft = sb.exec(sb.host, NFT, ['-j', 'list', 'ruleset']);
  if (nft.status !== 0) throw new Error(`nft list ruleset: ${nft.stderr}`);
  return {
    host: netnsView(sb, sb.host),
    containers: Object.fromEntries(containers.map((c) => [c, netnsView(sb, c)])),
    nftables: withoutHandles(JSON.parse(nft.stdout).nftables.filter((x: any) => !x.metainfo)),
    files: files(sb.tmp),
  };
}
