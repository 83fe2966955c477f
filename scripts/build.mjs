#!/usr/bin/env node
// Builds dist/: the server with TypeScript plus the compiler plugins named in nest-cli.json (what `nest build` did,
// without @nestjs/cli, whose Angular devkit needs Node 22), then the dashboard with Vite.
// `--if-stale` (npm's `prepare`) builds only when the sources differ from those dist/ was built from, so
// `npm install` on a built checkout leaves a running server's dist/ alone.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '..');
const require = createRequire(path.join(root, 'package.json'));
const STAMP = path.join(root, 'dist', '.build-inputs');
const INPUTS = ['src', 'dashboard', 'assets', 'nest-cli.json', 'tsconfig.json', 'package.json'];

/** One hash over every input file's path and content; mtimes change on checkout, content does not. */
function inputsHash() {
  const hash = createHash('sha256');
  const visit = (rel) => {
    const abs = path.join(root, rel);
    if (!existsSync(abs)) return;
    if (statSync(abs).isDirectory()) {
      for (const name of readdirSync(abs).sort()) if (name !== 'node_modules') visit(path.join(rel, name));
    } else {
      hash.update(rel).update('\0').update(readFileSync(abs)).update('\0');
    }
  };
  INPUTS.forEach(visit);
  return hash.digest('hex');
}

const hash = inputsHash();
const fresh =
  existsSync(path.join(root, 'dist', 'cli.js')) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === hash;
// `--check` only answers (exit 0 when dist/ is fresh, 1 when a build is due), for tests and scripts.
if (process.argv.includes('--check')) {
  console.log(
    fresh ? 'dist/ is up to date with the sources' : 'dist/ is missing or older than the sources: run npm run build',
  );
  process.exit(fresh ? 0 : 1);
}
if (process.argv.includes('--if-stale') && fresh) {
  console.log('dist/ is up to date with the sources; not rebuilding (npm run build forces it)');
  process.exit(0);
}

const ts = require('typescript');
const nestCli = JSON.parse(readFileSync(path.join(root, 'nest-cli.json'), 'utf8'));
const compilerOptions = nestCli.compilerOptions ?? {};
const tsconfigPath = path.join(root, compilerOptions.tsConfigPath ?? 'tsconfig.json');
const parsed = ts.getParsedCommandLineOfConfigFile(
  tsconfigPath,
  {},
  { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => fail([d]) },
);
if (!parsed) process.exit(1);

function fail(diagnostics) {
  const host = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: ts.sys.getCurrentDirectory,
    getNewLine: () => ts.sys.newLine,
  };
  console.error(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  console.error(`Found ${diagnostics.length} error(s).`);
  process.exit(1);
}

if (compilerOptions.deleteOutDir !== false) rmSync(parsed.options.outDir, { recursive: true, force: true });
const program = ts.createProgram({
  rootNames: parsed.fileNames,
  options: parsed.options,
  projectReferences: parsed.projectReferences,
});
const before = [];
const afterDeclarations = [];
for (const entry of compilerOptions.plugins ?? []) {
  const name = typeof entry === 'string' ? entry : entry.name;
  const options = typeof entry === 'string' ? {} : (entry.options ?? {});
  const plugin = require(`${name}/plugin`);
  if (plugin.before) before.push(plugin.before(options, program));
  if (plugin.afterDeclarations) afterDeclarations.push(plugin.afterDeclarations(options, program));
}
const emitted = program.emit(undefined, undefined, undefined, undefined, { before, afterDeclarations });
const diagnostics = ts.getPreEmitDiagnostics(program).concat(emitted.diagnostics);
if (diagnostics.length) fail(diagnostics);

const { build } = await import(pathToFileURL(require.resolve('vite')).href);
await build({ configFile: path.join(root, 'dashboard', 'vite.config.ts') });
writeFileSync(STAMP, hash);
