'use strict';
/**
 * An application that holds no Google credentials using the official @google-cloud/storage
 * client through tether: apiEndpoint = tether, no auth client, the library's default upload
 * paths (save with resumable:false, createWriteStream resumable with its own session start),
 * a crc32c-validated download, a ranged download, list and delete. Tether adds the token.
 * Prints one JSON summary line; exits 1 on any failure, 2 on the overall timeout.
 *
 * Usage: node storage_forward.js --endpoint http://127.0.0.1:PORT [--bucket NAME]
 *        [--size-mb 5] [--chunk-mb 1] [--name big.bin] [--timeout-s 120] [--retries 3]
 *        [--precondition 1]
 * The library retries (and so resumes) a resumable upload only when it is idempotent by its
 * rules: --precondition 1 uploads with ifGenerationMatch=0 (create only), which makes it so.
 */
const crypto = require('crypto');
const path = require('path');
const {Readable} = require('stream');
const {pipeline} = require('stream/promises');

const {Storage} = require('@google-cloud/storage');
const storageSrc = path.dirname(require.resolve('@google-cloud/storage'));
const {CRC32C} = require(path.join(storageSrc, 'crc32c.js'));

function parseArgs(argv) {
  const opts = {bucket: 'tether-fw', sizeMb: 5, chunkMb: 1, name: 'big.bin', timeoutS: 120, retries: 3,
    precondition: '0'};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts) && key !== 'endpoint') throw new Error(`unknown option ${argv[i]}`);
    opts[key] = typeof opts[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!opts.endpoint) throw new Error('--endpoint is required');
  return opts;
}

const BLOCK = 1024 * 1024;
const BASE = crypto.randomBytes(BLOCK);

function block(k) {
  const b = Buffer.from(BASE);
  b.writeUInt32BE(k, 0);
  return b;
}

function bytesAt(start, end) {
  const parts = [];
  for (let k = Math.floor(start / BLOCK); k * BLOCK <= end; k++) {
    parts.push(block(k).subarray(Math.max(0, start - k * BLOCK), Math.min(BLOCK, end - k * BLOCK + 1)));
  }
  return Buffer.concat(parts);
}

function assert(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function run(opts, steps) {
  // A fresh client per step: the library flips the shared retryOptions.autoRetry off for a
  // write without a precondition and does not always turn it back on (7.22.0).
  const makeStorage = () => new Storage({
    apiEndpoint: opts.endpoint,
    projectId: 'test-project',
    retryOptions: {autoRetry: opts.retries > 0, maxRetries: opts.retries, totalTimeout: 60,
      maxRetryDelay: 1, retryDelayMultiplier: 1.5},
  });
  const storage = makeStorage();
  const step = async (name, fn) => {
    const t0 = Date.now();
    const detail = await fn();
    steps.push({step: name, ms: Date.now() - t0, ...(detail || {})});
  };
  const bucket = storage.bucket(opts.bucket);
  await step('bucket', async () => {
    const [exists] = await bucket.exists();
    if (!exists) await storage.createBucket(opts.bucket);
  });

  const small = Buffer.from('small object through tether\n');
  await step('small_upload', async () => {
    await bucket.file('s/small.txt').save(small, {resumable: false, contentType: 'text/plain'});
    const [got] = await bucket.file('s/small.txt').download();
    assert(got.equals(small), 'small object round trip');
  });

  const size = Math.round(opts.sizeMb * BLOCK);
  const crc = new CRC32C();
  await step('resumable_upload', async () => {
    let k = 0;
    const src = new Readable({
      read() {
        if (k * BLOCK >= size) return this.push(null);
        const b = block(k).subarray(0, Math.min(BLOCK, size - k * BLOCK));
        k++;
        crc.update(b);
        this.push(b);
      },
    });
    await pipeline(src, makeStorage().bucket(opts.bucket).file(opts.name).createWriteStream({
      resumable: true, validation: 'crc32c', chunkSize: Math.round(opts.chunkMb * BLOCK),
      metadata: {contentType: 'application/octet-stream'},
      ...(opts.precondition === '1' ? {preconditionOpts: {ifGenerationMatch: 0}} : {}),
    }));
    const [md] = await bucket.file(opts.name).getMetadata();
    assert(Number(md.size) === size, `size ${md.size} == ${size}`);
    assert(md.crc32c === crc.toString(), `crc32c ${md.crc32c} == ${crc.toString()}`);
    return {bytes: size, crc32c: md.crc32c};
  });

  await step('download_validated_and_ranged', async () => {
    const whole = new CRC32C();
    let n = 0;
    for await (const c of bucket.file(opts.name).createReadStream({validation: 'crc32c'})) {
      whole.update(c);
      n += c.length;
    }
    assert(n === size && whole.toString() === crc.toString(), 'whole download matches');
    const start = Math.floor(size / 3) + 7;
    const end = Math.min(size - 1, start + BLOCK + 3);
    const [part] = await bucket.file(opts.name).download({start, end});
    assert(part.equals(bytesAt(start, end)), `range ${start}-${end}`);
  });

  await step('list_and_delete', async () => {
    const [files] = await bucket.getFiles({prefix: 's/'});
    assert(files.map((f) => f.name).join() === 's/small.txt', 'listed');
    await bucket.file('s/small.txt').delete();
    const [exists] = await bucket.file('s/small.txt').exists();
    assert(!exists, 'deleted');
  });
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(64);
  }
  const steps = [];
  const timer = setTimeout(() => {
    console.log(JSON.stringify({ok: false, error: `timeout after ${opts.timeoutS} s`, steps}));
    process.exit(2);
  }, opts.timeoutS * 1000);
  try {
    await run(opts, steps);
    console.log(JSON.stringify({ok: true, steps}));
    clearTimeout(timer);
    process.exit(0);
  } catch (e) {
    console.log(JSON.stringify({ok: false, error: String(e && e.stack || e), steps}));
    process.exit(1);
  }
}

main();
