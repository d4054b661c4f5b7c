'use strict';
/**
 * Runs the official @google-cloud/pubsub client over its REST transport against tether (which
 * forwards to the Pub/Sub emulator or Google): creates a topic and two subscriptions (one with
 * message ordering), publishes messages with attributes and ordering keys, pulls and
 * acknowledges them, then deletes what it made. The app holds no Google credentials: the only
 * token it sends is a made-up one ($APP_TOKEN) that tether must strip. Prints one JSON summary
 * line; exits 1 on any failure, 2 on the overall timeout.
 *
 * Usage: node pubsub_forward.js --endpoint http://127.0.0.1:PORT [--project P] [--prefix NAME]
 *        [--timeout-s 60] [--emulator-compat 1]
 * The client reaches a plain-http endpoint with {apiEndpoint: 'host:port', protocol: 'http',
 * fallback: 'rest'}; v1 GAPIC clients (used for pull/acknowledge, which the high-level
 * Subscription only does over gRPC streaming) take servicePath/port/protocol instead.
 */
const path = require('path');
const {PubSub, v1} = require('@google-cloud/pubsub');

const pubsubSrc = path.dirname(require.resolve('@google-cloud/pubsub'));
const gal = require(require.resolve('google-auth-library', {paths: [pubsubSrc]}));

function parseArgs(argv) {
  const opts = {project: 'tether-test', prefix: 'fw', timeoutS: 60, emulatorCompat: '0'};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts) && key !== 'endpoint') throw new Error(`unknown option ${argv[i]}`);
    opts[key] = typeof opts[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!opts.endpoint) throw new Error('--endpoint is required');
  return opts;
}

function assert(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// The Pub/Sub emulator refuses the empty `tags` map this client version puts in every
// create body ("Payload isn't valid for request"; Google accepts it). With --emulator-compat
// the app's transport drops exactly that before the request leaves the app: tether itself
// forwards bodies unchanged.
class AppAuth extends gal.OAuth2Client {
  constructor(compat) {
    super();
    this.compat = compat;
  }

  fetch(url, init) {
    if (this.compat && init && typeof init.body === 'string' && init.method === 'PUT') {
      init = {...init, body: init.body.replace(/,?"tags":\{\}/, '').replace('{,', '{')};
    }
    return super.fetch(url, init);
  }
}

function appAuth(compat) {
  const client = new AppAuth(compat);
  client.setCredentials({access_token: process.env.APP_TOKEN || 'app-token',
    expiry_date: Date.now() + 3600 * 1000});
  return client;
}

async function run(opts, steps) {
  const u = new URL(opts.endpoint);
  const common = {projectId: opts.project, fallback: 'rest', protocol: 'http', authClient: appAuth(opts.emulatorCompat === '1')};
  const pubsub = new PubSub({...common, apiEndpoint: `${u.hostname}:${u.port}`, emulatorMode: false});
  const gapic = {...common, servicePath: u.hostname, port: Number(u.port)};
  const subscriber = new v1.SubscriberClient(gapic);
  const step = async (name, fn) => {
    const t0 = Date.now();
    const detail = await fn();
    steps.push({step: name, ms: Date.now() - t0, ...(detail || {})});
  };
  const topicName = `${opts.prefix}-topic-${Date.now()}`;
  const subName = `${opts.prefix}-sub-${Date.now()}`;
  const orderedName = `${opts.prefix}-ordered-${Date.now()}`;
  const subPath = (s) => `projects/${opts.project}/subscriptions/${s}`;
  let topic;

  await step('create_topic_and_subscriptions', async () => {
    [topic] = await pubsub.createTopic(topicName);
    await topic.createSubscription(subName);
    await topic.createSubscription(orderedName, {enableMessageOrdering: true});
    const [topics] = await pubsub.getTopics();
    assert(topics.some((t) => t.name.endsWith(`/${topicName}`)), 'topic listed');
    const [md] = await pubsub.subscription(orderedName).getMetadata();
    assert(md.enableMessageOrdering === true, 'ordering enabled on the subscription');
  });

  const sent = [];
  await step('publish_with_attributes_and_ordering_keys', async () => {
    const ordered = pubsub.topic(topicName, {messageOrdering: true, batching: {maxMessages: 1}});
    for (let i = 0; i < 6; i++) {
      const key = i % 2 ? 'odd' : 'even';
      const id = await ordered.publishMessage({data: Buffer.from(`message ${i}`),
        attributes: {n: String(i), origin: 'tether-test'}, orderingKey: key});
      sent.push({id, i, key});
    }
    const plain = await topic.publishMessage({data: Buffer.from('plain'), attributes: {kind: 'plain'}});
    sent.push({id: plain, i: 6, key: ''});
    assert(new Set(sent.map((s) => s.id)).size === sent.length, 'distinct message ids');
    return {published: sent.length};
  });

  const pullAll = async (sub, want) => {
    const got = [];
    const deadline = Date.now() + 20000;
    while (got.length < want && Date.now() < deadline) {
      const [resp] = await subscriber.pull({subscription: subPath(sub), maxMessages: 100, returnImmediately: true});
      const msgs = resp.receivedMessages || [];
      if (msgs.length) {
        got.push(...msgs);
        await subscriber.acknowledge({subscription: subPath(sub), ackIds: msgs.map((m) => m.ackId)});
      } else {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return got;
  };

  await step('pull_and_ack', async () => {
    const got = await pullAll(orderedName, sent.length);
    assert(got.length === sent.length, `pulled ${got.length} of ${sent.length}`);
    for (const m of got) {
      const s = sent.find((x) => x.id === m.message.messageId);
      assert(s, `pulled an unknown message ${m.message.messageId}`);
      assert(Buffer.from(m.message.data).toString() === (s.i === 6 ? 'plain' : `message ${s.i}`), 'data');
      assert((m.message.orderingKey || '') === s.key, `ordering key of ${s.i}`);
      if (s.i < 6) assert(m.message.attributes.n === String(s.i), `attributes of ${s.i}`);
    }
    for (const key of ['odd', 'even']) {
      const order = got.filter((m) => m.message.orderingKey === key)
          .map((m) => Number(m.message.attributes.n));
      assert(JSON.stringify(order) === JSON.stringify([...order].sort((a, b) => a - b)),
          `order within key ${key}: ${order}`);
    }
    const plainSub = await pullAll(subName, sent.length);
    assert(plainSub.length === sent.length, `second subscription got ${plainSub.length}`);
    // Acknowledged: nothing comes back.
    const [again] = await subscriber.pull({subscription: subPath(orderedName), maxMessages: 10, returnImmediately: true});
    assert(!(again.receivedMessages || []).length, 'acknowledged messages are not redelivered');
    return {pulled: got.length};
  });

  await step('delete', async () => {
    await pubsub.subscription(subName).delete();
    await pubsub.subscription(orderedName).delete();
    await topic.delete();
    let code = null;
    try {
      await topic.getMetadata();
    } catch (e) {
      code = e.code;
    }
    assert(code === 5 || code === 404, `a deleted topic is NOT_FOUND (got ${code})`);
  });
  await subscriber.close();
  await pubsub.close();
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
