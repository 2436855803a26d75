// V8's baseline compiler (Liftoff) on the same bytes as Spate's compile_throughput benchmark.
//
// Times `WebAssembly.compile(bytes)` (and, unless --no-stream, `WebAssembly.compileStreaming` fed
// in 64 KiB chunks) and reports the median wall time, MB/s of wasm (10^6 bytes per second) and
// functions/s. Must run with V8 restricted to Liftoff and eager compilation, and with V8's native
// module cache off (otherwise compiling the same bytes again returns the cached code in a few ms):
//
//   node --liftoff --no-wasm-tier-up --no-wasm-lazy-compilation \
//        --no-wasm-native-module-cache-enabled --expose-gc \
//        [--wasm-num-compilation-tasks=N] benches/liftoff.js [OPTIONS] FILE.wasm...
//
// With --no-wasm-lazy-compilation and --no-wasm-tier-up, the compile promise resolves once
// Liftoff has compiled every function and nothing else runs. --wasm-num-compilation-tasks
// bounds V8's background compile threads (1 = single-threaded, as Spate's compile_threads(1)).
//
// Options: --runs N (default 5), --warmup N (default 1), --chunk BYTES (default 65536),
//          --no-stream, --label TEXT (config column), --tsv (rows as compile_throughput --tsv).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const REQUIRED_FLAGS = [
  '--liftoff',
  '--no-wasm-tier-up',
  '--no-wasm-lazy-compilation',
  '--no-wasm-native-module-cache-enabled',
  '--expose-gc',
];

function usage(msg) {
  if (msg) console.error(`liftoff.js: ${msg}`);
  console.error(`usage: node ${REQUIRED_FLAGS.join(' ')} benches/liftoff.js ` +
    '[--runs N] [--warmup N] [--chunk BYTES] [--no-stream] [--label TEXT] [--tsv] FILE.wasm...');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { runs: 5, warmup: 1, chunk: 64 * 1024, stream: true, label: '', tsv: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const count = (v, min) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) usage(`${a}: expected an integer >= ${min}, got '${v}'`);
      return n;
    };
    if (a === '--runs') opts.runs = count(value(), 1);
    else if (a === '--warmup') opts.warmup = count(value(), 0);
    else if (a === '--chunk') opts.chunk = count(value(), 1);
    else if (a === '--no-stream') opts.stream = false;
    else if (a === '--label') opts.label = value();
    else if (a === '--tsv') opts.tsv = true;
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option '${a}'`);
    else opts.files.push(a);
  }
  if (opts.files.length === 0) usage('no module given');
  return opts;
}

// Number of functions defined by the module: the count of its code section (id 10).
function definedFunctions(bytes) {
  let pos = 8;
  const leb = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[pos++];
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) return result;
    }
  };
  while (pos < bytes.length) {
    const id = bytes[pos++];
    const size = leb();
    const end = pos + size;
    if (id === 10) return leb();
    pos = end;
  }
  return 0;
}

// Worker threads V8 may compile on: --wasm-num-compilation-tasks if given, else V8's default.
function compileTasks() {
  const flag = process.execArgv.find((a) => a.startsWith('--wasm-num-compilation-tasks='));
  return flag ? Number(flag.split('=')[1]) : 0;
}

async function compileWhole(bytes) {
  return WebAssembly.compile(bytes);
}

async function compileStreamed(bytes, chunk) {
  const body = new ReadableStream({
    start(controller) {
      for (let off = 0; off < bytes.length; off += chunk) {
        controller.enqueue(bytes.subarray(off, Math.min(off + chunk, bytes.length)));
      }
      controller.close();
    },
  });
  return WebAssembly.compileStreaming(new Response(body, { headers: { 'content-type': 'application/wasm' } }));
}

async function measure(fn, opts) {
  const times = [];
  for (let run = 0; run < opts.warmup + opts.runs; run++) {
    globalThis.gc(); // free the previous module's code outside the timed region
    const start = process.hrtime.bigint();
    const module = await fn();
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    if (!(module instanceof WebAssembly.Module)) throw new Error('compile did not produce a module');
    if (run >= opts.warmup) times.push(elapsed);
  }
  times.sort((a, b) => a - b);
  const n = times.length;
  const median = n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  return { median, min: times[0] };
}

async function main() {
  const missing = REQUIRED_FLAGS.filter((f) => !process.execArgv.includes(f));
  if (missing.length) usage(`node must run with ${missing.join(' ')}`);
  const opts = parseArgs(process.argv.slice(2));
  const tasks = compileTasks();
  const threads = tasks > 0 ? String(tasks) : 'V8 default';
  const chunkLabel = opts.chunk % 1024 === 0 ? `${opts.chunk / 1024} KiB chunks` : `${opts.chunk} B chunks`;
  for (const file of opts.files) {
    const bytes = new Uint8Array(fs.readFileSync(file));
    const functions = definedFunctions(bytes);
    const variants = [['whole', () => compileWhole(bytes)]];
    if (opts.stream) variants.push([`stream ${chunkLabel}`, () => compileStreamed(bytes, opts.chunk)]);
    const rows = [];
    for (const [name, fn] of variants) {
      rows.push({ config: opts.label ? `${name} ${opts.label}` : name, ...(await measure(fn, opts)) });
    }
    const name = path.basename(file);
    if (opts.tsv) {
      for (const r of rows) {
        console.log([name, 'liftoff', r.config, tasks > 0 ? tasks : 'default', bytes.length, functions,
          r.median.toFixed(6), r.min.toFixed(6), ''].join('\t'));
      }
      continue;
    }
    console.log(`${file} (${(bytes.length / 1e6).toFixed(2)} MB, ${functions} functions), V8 ${process.versions.v8} ` +
      `Liftoff, compile tasks: ${threads}, median of ${opts.runs} runs after ${opts.warmup} warm-up:`);
    console.log(`  ${'config'.padEnd(22)} ${'median ms'.padStart(11)} ${'min ms'.padStart(11)} ` +
      `${'MB/s'.padStart(9)} ${'functions/s'.padStart(12)}`);
    for (const r of rows) {
      console.log(`  ${r.config.padEnd(22)} ${(r.median * 1e3).toFixed(1).padStart(11)} ` +
        `${(r.min * 1e3).toFixed(1).padStart(11)} ${(bytes.length / 1e6 / r.median).toFixed(2).padStart(9)} ` +
        `${(functions / r.median).toFixed(0).padStart(12)}`);
    }
  }
}

main().catch((err) => {
  console.error(`liftoff.js: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
