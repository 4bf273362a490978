// Role: meta (executables.ts): chained after a main plugin, adjusts what it made; needs prevResult.
/**
 * dist/bin/dnsname: the dnsname CNI plugin; started with `--responder` (as the plugin does,
 * detached, with the same bundle) it is the long-lived DNS responder instead, and with
 * `--serve --records DIR --listen ADDR:PORT` the standalone resolver (what `cnikit dns serve`
 * runs): responder/main.ts. The responder's code (and dns2) is loaded only then, and the plugin's
 * only for the commands that need it (VERSION is answered by the entry alone), so a plugin exec
 * stays light. A call's rtnetlink handle (to bind records to the bridge) is a fresh process's
 * blocking one (processKernel).
 */
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

if (process.argv.includes('--responder') || process.argv.includes('--serve')) {
  void import('../../responder/main.ts').then((m) => m.responderMain(process.argv.slice(2), process.env));
} else {
  executableMain(aboutOf('dnsname'),
    async () => (await import('./plugin.ts')).dnsnamePlugin,
    async () => (await import('../../pkg/open-kernel.ts')).processKernel());
}
