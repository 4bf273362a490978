/**
 * `cnikit engine status|stop|start`: the warm engine of this network namespace (docs/engine.md).
 * status prints what it answers (pid, uptime, calls, p50/p99 per plugin and command, RSS, the
 * DNS responders it hosts: run directory, networks, names);
 * stop asks it to finish its calls and exit; start makes one run now, through the same path a
 * plugin call takes (a VERSION call through a launcher, which starts it), and waits until it
 * answers; unit prints a systemd unit that runs this checkout's engine at boot, in the
 * foreground. Exits 5 when there is no engine to report on or to stop.
 */
import type { Command } from 'commander';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { act } from '../act.ts';
import { ExitCode } from '../exit-codes.ts';
import { selfDir } from '../self.ts';

const HELP = `
Examples:
  $ sudo cnikit engine status
  $ sudo cnikit engine status --json | jq '.perCall'
  $ sudo cnikit engine stop
  $ sudo ip netns exec sandbox1 cnikit engine start
  $ cnikit engine unit | sudo tee /etc/systemd/system/cnikit-engine.service
  $ sudo systemctl enable --now cnikit-engine
The engine is per network namespace: run these in the namespace where the runtime calls the
plugins. Settings: /etc/cnikit/engine.conf or CNIKIT_ENGINE, CNIKIT_ENGINE_IDLE (docs/engine.md).`;

async function engineName(): Promise<string> {
  const { engineSocketName } = await import('../../engine/protocol.ts');
  return engineSocketName(realpathSync(join(selfDir(), '.lib')));
}

export function register(program: Command): void {
  const engine = program.command('engine').description('the warm engine of this network namespace: status, stop, start');
  engine.addHelpText('after', HELP);
  engine.command('status').description('print its pid, uptime, calls served, p50/p99 per plugin and command, RSS')
    .option('--json', 'print JSON')
    .action(act(async (o: { json?: boolean }) => {
      const { engineStatus } = await import('../../engine/protocol.ts');
      const s = await engineStatus(await engineName());
      if (!s) {
        process.stderr.write('cnikit: no engine runs in this network namespace\n');
        return ExitCode.NotFound;
      }
      if (o.json) return void process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      const lines = [
        `pid ${s.pid}, up ${s.uptime.toFixed(0)} s, ${s.calls} calls (${s.inFlight} in flight, ${s.declined + (s.dropped ?? 0)} run fresh), RSS ${(s.rss / 1048576).toFixed(1)} MiB${s.heap ? ` (V8 heap ${(s.heap.used / 1048576).toFixed(1)} of ${(s.heap.total / 1048576).toFixed(1)} MiB)` : ""}`,
        `idle exit ${s.idle ? `after ${s.idle} s` : 'never'}; serves ${s.lib} in ${s.netns}`,
        ...Object.entries(s.perCall).map(([k, v]) => `  ${k.padEnd(22)} ${String(v.count).padStart(7)} calls   p50 ${v.p50.toFixed(2)} ms   p99 ${v.p99.toFixed(2)} ms`),
        ...(s.dns?.length ? ['DNS served in the engine:'] : []),
        ...(s.dns ?? []).map((d) => `  ${d.runDir}: ${d.networks} network${d.networks === 1 ? '' : 's'}, ${d.names} name${d.names === 1 ? '' : 's'}${d.recordsDir !== d.runDir ? ` (records ${d.recordsDir})` : ''}`),
      ];
      process.stdout.write(lines.join('\n') + '\n');
    }));
  engine.command('stop').description('let it finish the calls it has taken on, then exit (the next call runs fresh and starts a new one)')
    .action(act(async () => {
      const { MAGIC, engineExchange } = await import('../../engine/protocol.ts');
      const r = await engineExchange(await engineName(), Buffer.concat([MAGIC, Buffer.from('Q')]));
      if (r?.code !== 0) {
        process.stderr.write('cnikit: no engine runs in this network namespace\n');
        return ExitCode.NotFound;
      }
      process.stdout.write(`stopping engine ${(JSON.parse(r.stdout) as { pid: number }).pid}\n`);
    }));
  engine.command('unit').description('print a systemd unit that runs this engine at boot (in the host network namespace, never idle-exiting)')
    .action(act(async () => {
      const { PLUGINS } = await import('../../executables.ts');
      const dir = selfDir();
      process.stdout.write([
        '# cnikit engine: the warm engine of the host network namespace (docs/engine.md), started at',
        '# boot instead of by the first plugin call. A new build makes it exit; systemd starts the new one.',
        '[Unit]', 'Description=cnikit warm CNI engine', 'After=network-pre.target', '',
        '[Service]', 'Type=simple', 'Environment=CNIKIT_ENGINE_IDLE=0 CNIKIT_ENGINE_LOG=-',
        `ExecStart=${join(dir, '.lib', 'node')} --max-semi-space-size=2 ${join(dir, '.lib', 'launch.cjs')} engine ${join(dir, PLUGINS[0]!.type)}`,
        // Why process: only the engine gets SIGTERM (it drains); DNS responders it started stay up.
        'KillMode=process', 'Restart=always', 'RestartSec=2', '',
        '[Install]', 'WantedBy=multi-user.target', '',
      ].join('\n'));
    }));
  engine.command('start').description('start one now (as the first plugin call would) and wait until it answers')
    .action(act(async () => {
      const [{ spawnSync }, { engineStatus }, { PLUGINS }] = await Promise.all([import('node:child_process'), import('../../engine/protocol.ts'), import('../../executables.ts')]);
      const name = await engineName();
      spawnSync(join(selfDir(), PLUGINS[0]!.type), [], { input: '{"cniVersion":"1.0.0"}', env: { ...process.env, CNI_COMMAND: 'VERSION', CNIKIT_ENGINE: 'on' }, stdio: ['pipe', 'ignore', 'inherit'] });
      for (let i = 0; i < 200; i++) {
        const s = await engineStatus(name, 1000);
        if (s) return void process.stdout.write(`engine ${s.pid} is running\n`);
        await new Promise((r) => setTimeout(r, 50));
      }
      process.stderr.write('cnikit: the engine did not answer within 10 s\n');
      return ExitCode.Failure;
    }));
}
