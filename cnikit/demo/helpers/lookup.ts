/**
 * The demo's name lookup: `lookup DNS NAME...` resolves each NAME (A) through the server DNS only
 * and prints `resolved NAME -> ADDRESS` per name. Exits 1 at the first name that fails.
 */
import { promises as dns } from 'node:dns';

export async function lookup(args: string[]): Promise<number> {
  const [server = '', ...names] = args;
  const r = new dns.Resolver({ timeout: 2000, tries: 2 });
  r.setServers([server]);
  try {
    for (const n of names) process.stdout.write(`resolved ${n} -> ${(await r.resolve4(n))[0]}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${String(err)}\n`);
    return 1;
  }
}
