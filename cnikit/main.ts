/**
 * Entry of the `cnikit` executable (dist/bin/cnikit). The namespace-exec helper is dispatched
 * before anything else loads, since it runs on every `cnikit run`; everything else goes to the
 * commander program in program.ts.
 */
import { execInNetnsMain } from './exec-in-netns.ts';

if (process.argv[2] === '__exec-in-netns') {
  process.exitCode = execInNetnsMain(process.argv.slice(3));
} else {
  void import('./program.ts').then((m) => m.main(process.argv));
}
