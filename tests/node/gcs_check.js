'use strict';
/**
 * Runs the official @google-cloud/storage client against a Cloud Storage endpoint (tether's
 * fake, or later tether itself) and checks what comes back: small uploads (resumable:false,
 * i.e. multipart, and resumable), a large resumable upload streamed from a generator with
 * crc32c validation, whole and ranged downloads, list with prefix/delimiter, metadata get/set,
 * compose and delete. Prints one JSON summary line; exits 1 on any failure, 2 on the overall
 * timeout.
 *
 * Usage: node gcs_check.js --endpoint http://127.0.0.1:PORT [--bucket NAME] [--size-mb 100]
 *        [--chunk-mb 8] [--auth token|metadata|refresh] [--timeout-s 120]
 * Auth (no real Google credentials anywhere):
 *   token     a fixed access token from $GCS_TOKEN (default "test-token"), via an OAuth2Client
 *   metadata  Application Default Credentials on "GCE": set GCE_METADATA_HOST to the metadata
 *             fake (and HOME / GOOGLE_APPLICATION_CREDENTIALS so no real ADC file is found)
 *   refresh   an authorized_user file ($GOOGLE_APPLICATION_CREDENTIALS) whose token_uri is
 *             used as the OAuth token endpoint (the library itself ignores token_uri there)
 * For HTTPS endpoints with a test CA, set NODE_EXTRA_CA_CERTS.
 */
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const {Readable} = require('stream');
const {pipeline} = require('stream/promises');

const {Storage} = require('@google-cloud/storage');
// The storage package carries its own google-auth-library (9.x); use that one so the
// `instanceof GoogleAuth` checks inside the client hold.
const storageSrc = path.dirname(require.resolve('@google-cloud/storage'));
const gal = require(require.resolve('google-auth-library', {paths: [storageSrc]}));
const {CRC32C} = require(path.join(storageSrc, 'crc32c.js'));

function parseArgs(argv) {
  const opts = {bucket: 'tether-check', sizeMb: 100, chunkMb: 8, auth: 'token', timeoutS: 120};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts) && key !== 'endpoint') throw new Error(`unknown option ${argv[i]}`);
    opts[key] = typeof opts[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!opts.endpoint) throw new Error('--endpoint is required');
  return opts;
}

function makeAuthClient(mode) {
  if (mode === 'token') {
    const client = new gal.OAuth2Client();
    client.setCredentials({
      access_token: process.env.GCS_TOKEN || 'test-token',
      expiry_date: Date.now() + 3600 * 1000,
    });
    return client;
  }
  if (mode === 'metadata') {
    return new gal.GoogleAuth({scopes: ['https://www.googleapis.com/auth/devstorage.read_write']});
  }
  if (mode === 'refresh') {
    const file = JSON.parse(fs.readFileSync(process.env.GOOGLE_APPLICATION_CREDENTIALS, 'utf8'));
    const client = new gal.UserRefreshClient({
      clientId: file.client_id,
      clientSecret: file.client_secret,
      refreshToken: file.refresh_token,
      endpoints: file.token_uri ? {oauth2TokenUrl: file.token_uri} : undefined,
    });
    return client;
  }
  throw new Error(`unknown --auth ${mode}`);
}

// Deterministic test data: block k (1 MiB) is a fixed random buffer stamped with k, so any
// byte range can be recomputed without keeping the object in memory.
const BLOCK = 1024 * 1024;
const BASE = crypto.randomBytes(BLOCK);

function block(k) {
  const b = Buffer.from(BASE);
  b.writeUInt32BE(k, 0);
  b.writeUInt32BE((k ^ 0xa5a5a5a5) >>> 0, BLOCK - 4);
  return b;
}

function bytesAt(start, end) { // inclusive end
  const parts = [];
  for (let k = Math.floor(start / BLOCK); k * BLOCK <= end; k++) {
    const b = block(k);
    parts.push(b.subarray(Math.max(0, start - k * BLOCK), Math.min(BLOCK, end - k * BLOCK + 1)));
  }
  return Buffer.concat(parts);
}

function dataStream(size, hashes) {
  let k = 0;
  return new Readable({
    read() {
      if (k * BLOCK >= size) return this.push(null);
      const b = block(k).subarray(0, Math.min(BLOCK, size - k * BLOCK));
      k++;
      hashes.md5.update(b);
      hashes.crc.update(b);
      this.push(b);
    },
  });
}

async function streamHashes(readable) {
  const md5 = crypto.createHash('md5');
  const crc = new CRC32C();
  let size = 0;
  for await (const chunk of readable) {
    md5.update(chunk);
    crc.update(chunk);
    size += chunk.length;
  }
  return {size, md5: md5.digest('base64'), crc32c: crc.toString()};
}

function assert(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function run(opts, steps) {
  const storage = new Storage({
    apiEndpoint: opts.endpoint,
    projectId: 'test-project',
    // Without this, a custom apiEndpoint makes the client send no Authorization at all.
    useAuthWithCustomEndpoint: true,
    authClient: makeAuthClient(opts.auth),
    retryOptions: {autoRetry: true, maxRetries: 3, totalTimeout: 60, maxRetryDelay: 2},
  });
  const step = async (name, fn) => {
    const t0 = Date.now();
    const detail = await fn();
    steps.push({step: name, ms: Date.now() - t0, ...(detail || {})});
  };

  const bucket = storage.bucket(opts.bucket);
  await step('create_bucket', async () => {
    const [exists] = await bucket.exists();
    if (!exists) await storage.createBucket(opts.bucket);
    const [md] = await bucket.getMetadata();
    assert(md.name === opts.bucket, 'bucket metadata names the bucket');
  });

  const small = Buffer.from('hello from @google-cloud/storage\n');
  await step('small_upload_nonresumable', async () => {
    await bucket.file('small/a.txt').save(small, {resumable: false, contentType: 'text/plain'});
    const [md] = await bucket.file('small/a.txt').getMetadata();
    assert(Number(md.size) === small.length, 'small object size');
    return {crc32c: md.crc32c};
  });

  await step('multipart_with_metadata_md5', async () => {
    const f = bucket.file('small/dir/b.json');
    await f.save(JSON.stringify({x: 1}), {
      resumable: false, validation: 'md5',
      metadata: {contentType: 'application/json', metadata: {owner: 'tether', n: '1'}},
    });
    const [md] = await f.getMetadata();
    assert(md.contentType === 'application/json', 'multipart contentType kept');
    assert(md.metadata && md.metadata.owner === 'tether', 'custom metadata kept');
  });

  // @google-cloud/storage 7.22.0 drops `useAuthWithCustomEndpoint` on the createWriteStream /
  // save path (File#startResumableUpload_ does not pass it on), so against a custom endpoint
  // the session-initiating POST goes out without Authorization. createResumableUpload does pass
  // it: open the session there and hand its URI to the upload. Chunk PUTs to a session URI
  // carry no Authorization either way; GCS does not require it there.
  const resumableUri = async (f, metadata) => (await f.createResumableUpload({metadata}))[0];

  await step('small_upload_resumable', async () => {
    const f = bucket.file('small/c.bin');
    const data = crypto.randomBytes(70000);
    await f.save(data, {resumable: true, uri: await resumableUri(f, {})});
    const [md] = await f.getMetadata();
    assert(Number(md.size) === data.length, 'small resumable size');
  });

  const size = Math.round(opts.sizeMb * BLOCK);
  const bigName = `big/${opts.sizeMb}mb.bin`;
  const sent = {md5: crypto.createHash('md5'), crc: new CRC32C()};
  await step('large_resumable_upload', async () => {
    const f = bucket.file(bigName);
    const uri = await resumableUri(f, {contentType: 'application/octet-stream'});
    await pipeline(dataStream(size, sent), f.createWriteStream({
      resumable: true, validation: 'crc32c', uri,
      chunkSize: opts.chunkMb > 0 ? Math.round(opts.chunkMb * BLOCK) : undefined,
      metadata: {contentType: 'application/octet-stream'},
    }));
    const [md] = await f.getMetadata();
    sent.md5 = sent.md5.digest('base64');
    sent.crc = sent.crc.toString();
    assert(Number(md.size) === size, `large object size ${md.size} == ${size}`);
    assert(md.crc32c === sent.crc, `crc32c ${md.crc32c} == ${sent.crc}`);
    assert(md.md5Hash === sent.md5, `md5 ${md.md5Hash} == ${sent.md5}`);
    return {bytes: size, crc32c: md.crc32c};
  });

  await step('download_whole_validated', async () => {
    const got = await streamHashes(bucket.file(bigName).createReadStream({validation: true}));
    assert(got.size === size && got.md5 === sent.md5 && got.crc32c === sent.crc,
        'downloaded bytes match what was uploaded');
    return {bytes: got.size};
  });

  await step('download_range', async () => {
    const start = Math.floor(size / 3) + 17;
    const end = Math.min(size - 1, start + 3 * BLOCK + 5);
    const chunks = [];
    for await (const c of bucket.file(bigName).createReadStream({start, end})) chunks.push(c);
    const got = Buffer.concat(chunks);
    assert(got.equals(bytesAt(start, end)), `range ${start}-${end} content`);
    const [small2] = await bucket.file('small/a.txt').download({start: 6, end: 9});
    assert(small2.toString() === small.subarray(6, 10).toString(), 'small range content');
    return {bytes: got.length};
  });

  await step('list_prefix_delimiter', async () => {
    const [files, , resp] = await bucket.getFiles({prefix: 'small/', delimiter: '/',
      autoPaginate: false});
    const names = files.map((f) => f.name).sort();
    assert(JSON.stringify(names) === JSON.stringify(['small/a.txt', 'small/c.bin']),
        `items ${names}`);
    assert(JSON.stringify(resp.prefixes) === JSON.stringify(['small/dir/']),
        `prefixes ${resp.prefixes}`);
    // Page by hand, two results a page (autoPaginate treats maxResults as a total).
    const all = [];
    let query = {maxResults: 2, autoPaginate: false};
    let pages = 0;
    while (query && pages < 50) {
      const [page, next] = await bucket.getFiles(query);
      all.push(...page.map((f) => f.name));
      query = next;
      pages++;
    }
    const expected = ['big/' + bigName.slice(4), 'small/a.txt', 'small/c.bin', 'small/dir/b.json'];
    assert(JSON.stringify(all) === JSON.stringify(expected), `paged list ${all}`);
    return {items: names.length, prefixes: resp.prefixes.length, all: all.length, pages};
  });

  await step('metadata_get_set', async () => {
    const f = bucket.file('small/a.txt');
    const [before] = await f.getMetadata();
    await f.setMetadata({contentType: 'text/markdown', metadata: {color: 'blue'}});
    const [after] = await f.getMetadata();
    assert(after.contentType === 'text/markdown', 'contentType patched');
    assert(after.metadata.color === 'blue', 'custom metadata patched');
    assert(Number(after.metageneration) === Number(before.metageneration) + 1,
        'metageneration bumped');
  });

  await step('compose', async () => {
    const dest = bucket.file('composed/ac.bin');
    await bucket.combine(['small/a.txt', 'small/c.bin'], dest);
    const [md] = await dest.getMetadata();
    assert(Number(md.size) === small.length + 70000, 'composed size');
    const got = await streamHashes(dest.createReadStream({validation: true}));
    assert(got.crc32c === md.crc32c, 'composed crc32c');
    return {componentCount: md.componentCount};
  });

  await step('delete', async () => {
    for (const name of ['small/a.txt', 'composed/ac.bin', bigName]) {
      await bucket.file(name).delete();
    }
    const [exists] = await bucket.file(bigName).exists();
    assert(!exists, 'deleted object is gone');
    let code = null;
    try {
      await bucket.file(bigName).getMetadata();
    } catch (e) {
      code = e.code;
    }
    assert(code === 404, `getMetadata of a deleted object gives 404 (got ${code})`);
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
  const t0 = Date.now();
  try {
    await run(opts, steps);
    console.log(JSON.stringify({ok: true, ms: Date.now() - t0, auth: opts.auth, steps}));
    clearTimeout(timer);
    process.exit(0);
  } catch (e) {
    console.log(JSON.stringify({ok: false, error: String(e && e.stack || e), steps}));
    process.exit(1);
  }
}

main();
