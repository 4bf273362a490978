/**
 * The demo's HTTP client: `http-get HOST PORT [DNS]` GETs / from HOST:PORT and prints the body.
 * With DNS, HOST is a name first resolved (A) through that server only, never the system's
 * resolver, and the answer is printed as `resolved NAME -> ADDRESS`. Exits 0 on an answer, 1 on
 * an error, 2 on a timeout; everything is bounded (2 s per DNS try, 3 s for HTTP).
 */
import { promises as dns } from 'node:dns';
import { get } from 'node:http';

export async function httpGet(args: string[]): Promise<number> {
  const [target = '', port = '80', server] = args;
  let host = target;
  try {
    if (server) {
      const r = new dns.Resolver({ timeout: 2000, tries: 2 });
      r.setServers([server]);
      host = (await r.resolve4(target))[0] ?? '';
      process.stdout.write(`resolved ${target} -> ${host}\n`);
    }
  } catch (err) {
    process.stderr.write(`${String(err)}\n`);
    return 1;
  }
  return new Promise((resolve) => {
    // agent: false, so no kept-alive socket holds the process after the answer.
    const req = get({ host, port: Number(port), timeout: 3000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => { process.stdout.write(`${body.trim()}\n`); resolve(0); });
    });
    req.on('error', (e) => { process.stderr.write(`${String(e)}\n`); resolve(1); });
    req.on('timeout', () => { process.stderr.write('timeout\n'); req.destroy(); resolve(2); });
  });
}
