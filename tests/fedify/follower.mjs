// A fediverse follower built on Fedify: the other server in tests/test_fediverse_fedify.py.
//
// One Person actor, `alice`, with an RSA key pair made at start. Its inbox (and the shared inbox)
// records every activity Fedify hands to a listener: Fedify runs inbox listeners only for
// requests whose HTTP signature it verified against the sender's published key, and whose
// signer owns the activity's actor. Requests it refuses are recorded apart (`unverified`).
//
// The test drives it over a small HTTP API of its own, under /control/:
//   GET  /control/health                -> {actor}
//   POST /control/follow {handle}       -> resolve the handle (WebFinger, Fedify's lookupObject),
//                                          send a signed Follow; -> {actor, follow}
//   POST /control/unfollow {follow}     -> send a signed Undo of that Follow to the actor it followed
//   POST /control/outbox {url}          -> Fedify's traverseCollection of a collection, page by
//                                          page: {totalItems, items: [{type, id, object}]}
//   POST /control/lookup {id}           -> Fedify's lookupObject of a URL or handle, as JSON-LD
//   GET  /control/received              -> {received: [...], unverified: [...]}
//   POST /control/knock {origin, spec?} -> the HTTP signature spec Fedify signs with first for
//                                          that origin (set it when `spec` is given): after a
//                                          send, the one the server accepted: {spec}
//   POST /control/webfinger {resource}  -> Fedify's WebFinger lookup of an acct: or https: resource
//   POST /control/nodeinfo {url}        -> a server's NodeInfo 2.1 (found from /.well-known/nodeinfo)
//                                          as Fedify's parseNodeInfo reads it, strictly: {nodeinfo}
//   POST /control/parse {document}      -> Fedify's reading of a JSON-LD document: {type, jsonld}
//   POST /control/fetch {url, accept}   -> a plain fetch() from this process: {status, type, body}
//
// Environment: PORT (loopback port to listen on), NODE_EXTRA_CA_CERTS (the test CA, so that
// Fedify trusts feedsvc's TLS front).
import { AsyncLocalStorage } from "node:async_hooks";
import http from "node:http";
import { configure, getConsoleSink } from "@logtape/logtape";
import {
  createFederation,
  generateCryptoKeyPair,
  MemoryKvStore,
  nodeInfoToJson,
  parseNodeInfo,
} from "@fedify/fedify";
import {
  Accept,
  Announce,
  Create,
  Delete,
  Endpoints,
  Follow,
  Object as ASObject,
  Person,
  Undo,
  Update,
} from "@fedify/fedify/vocab";

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error("follower: PORT must be a port number");
  process.exit(2);
}
const origin = `http://127.0.0.1:${port}`;
const IDENTIFIER = "alice";

await configure({
  contextLocalStorage: new AsyncLocalStorage(),
  sinks: { console: getConsoleSink() },
  loggers: [
    { category: "fedify", lowestLevel: "info", sinks: ["console"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

const keyPair = await generateCryptoKeyPair("RSASSA-PKCS1-v1_5");
const received = [];
const unverified = [];
const follows = new Map(); // the id of each Follow we sent -> the Follow

const kv = new MemoryKvStore();
// Where Fedify remembers, per origin, which HTTP signature spec a server accepted (its
// double-knock: RFC 9421 first, then draft-cavage-12 after a 400/401).
const SPEC_KEY = ["_fedify", "httpMessageSignaturesSpec"];
const NODEINFO_2_1 = "http://nodeinfo.diaspora.software/ns/schema/2.1";
const federation = createFederation({
  kv,
  origin,
  // feedsvc listens on loopback in the test: Fedify refuses private addresses otherwise.
  allowPrivateAddress: true,
});

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (identifier !== IDENTIFIER) return null;
    const keys = await ctx.getActorKeyPairs(identifier);
    return new Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: identifier,
      name: "Alice (Fedify follower)",
      inbox: ctx.getInboxUri(identifier),
      endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
      publicKey: keys[0].cryptographicKey,
      assertionMethods: keys.map((key) => key.multikey),
    });
  })
  .setKeyPairsDispatcher((_ctx, identifier) => identifier === IDENTIFIER ? [keyPair] : []);

// Our Follows dereference: Fedify re-fetches an object embedded in an activity from another
// origin (feedsvc's Accept embeds our Follow) rather than trust the copy.
federation.setObjectDispatcher(Follow, "/follows/{id}", (_ctx, values) =>
  follows.get(new URL(`/follows/${values.id}`, origin).href) ?? null);

// What the test needs to know of a verified activity: its type, ids, and its object as
// Fedify parsed it (the object is embedded in what feedsvc sends, so no fetch is needed).
async function describe(ctx, activity) {
  const object = await activity.getObject({ documentLoader: ctx.documentLoader })
    .catch((error) => ({ error: String(error) }));
  let objectJson = null;
  if (object != null && typeof object.toJsonLd === "function") {
    objectJson = await object.toJsonLd({ format: "compact", contextLoader: ctx.contextLoader });
  } else if (object != null) {
    objectJson = object;
  }
  return {
    type: activity.constructor.name,
    id: activity.id?.href ?? null,
    actor: activity.actorId?.href ?? null,
    object: activity.objectId?.href ?? null,
    objectJson,
    recipient: ctx.recipient,
    receivedAt: new Date().toISOString(),
    activity: await activity.toJsonLd({ format: "compact", contextLoader: ctx.contextLoader }),
  };
}

function record(kind) {
  return async (ctx, activity) => {
    received.push(await describe(ctx, activity));
    console.log(`follower: received ${kind} ${activity.id?.href}`);
  };
}

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(Accept, record("Accept"))
  .on(Create, record("Create"))
  .on(Announce, record("Announce"))
  .on(Update, record("Update"))
  .on(Delete, record("Delete"))
  .on(Undo, record("Undo"))
  .onUnverifiedActivity(async (_ctx, activity, reason) => {
    unverified.push({
      type: activity.constructor.name,
      id: activity.id?.href ?? null,
      reason: JSON.parse(JSON.stringify(reason, (_k, v) => v instanceof URL ? v.href : v)),
    });
    console.log(`follower: unverified ${activity.id?.href}: ${reason.type}`);
  })
  .onError((_ctx, error) => {
    console.error("follower: inbox listener failed", error);
  });

function json(status, value) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

async function control(request) {
  const url = new URL(request.url);
  const ctx = federation.createContext(new URL(origin), undefined);
  if (url.pathname === "/control/health") {
    return json(200, { actor: ctx.getActorUri(IDENTIFIER).href });
  }
  if (url.pathname === "/control/received") {
    return json(200, { received, unverified });
  }
  if (url.pathname === "/control/follow" && request.method === "POST") {
    const { handle } = await request.json();
    const target = await ctx.lookupObject(handle);
    if (target == null || target.inboxId == null) {
      return json(404, { error: `cannot resolve ${handle} to an actor with an inbox` });
    }
    const follow = new Follow({
      id: ctx.getObjectUri(Follow, { id: crypto.randomUUID() }),
      actor: ctx.getActorUri(IDENTIFIER),
      object: target.id,
    });
    follows.set(follow.id.href, follow);
    await ctx.sendActivity({ identifier: IDENTIFIER }, target, follow);
    return json(200, { actor: target.id.href, follow: follow.id.href });
  }
  if (url.pathname === "/control/unfollow" && request.method === "POST") {
    const { follow: followId } = await request.json();
    const follow = follows.get(followId);
    if (follow == null) return json(404, { error: `no Follow ${followId} was sent` });
    const target = await ctx.lookupObject(follow.objectId);
    const undo = new Undo({
      id: new URL(`#undo`, follow.id),
      actor: ctx.getActorUri(IDENTIFIER),
      object: follow,
    });
    await ctx.sendActivity({ identifier: IDENTIFIER }, target, undo);
    return json(200, { undo: undo.id.href });
  }
  if (url.pathname === "/control/outbox" && request.method === "POST") {
    const { url: target } = await request.json();
    const collection = await ctx.lookupObject(target);
    if (collection == null) return json(404, { error: `lookupObject(${target}) found nothing` });
    const items = [];
    for await (const item of ctx.traverseCollection(collection)) {
      items.push({
        type: item.constructor.name,
        id: item.id?.href ?? null,
        object: item.objectId?.href ?? null,
      });
    }
    return json(200, { totalItems: collection.totalItems, items });
  }
  if (url.pathname === "/control/lookup" && request.method === "POST") {
    const { id } = await request.json();
    const found = await ctx.lookupObject(id);
    if (found == null) return json(404, { error: `lookupObject(${id}) found nothing` });
    return json(200, {
      type: found.constructor.name,
      jsonld: await found.toJsonLd({ format: "compact", contextLoader: ctx.contextLoader }),
    });
  }
  if (url.pathname === "/control/knock" && request.method === "POST") {
    const { origin: target, spec } = await request.json();
    if (spec != null) await kv.set([...SPEC_KEY, target], spec);
    return json(200, { spec: (await kv.get([...SPEC_KEY, target])) ?? null });
  }
  if (url.pathname === "/control/webfinger" && request.method === "POST") {
    const { resource } = await request.json();
    const found = await ctx.lookupWebFinger(resource);
    if (found == null) return json(404, { error: `WebFinger found nothing for ${resource}` });
    return json(200, found);
  }
  if (url.pathname === "/control/nodeinfo" && request.method === "POST") {
    // getNodeInfo does the same, but refuses loopback addresses with no option to allow them.
    const { url: target } = await request.json();
    const index = await (await fetch(new URL("/.well-known/nodeinfo", target))).json();
    const link = index.links?.find((l) => l.rel === NODEINFO_2_1);
    if (link == null) return json(404, { error: `no ${NODEINFO_2_1} link`, index });
    const document = await (await fetch(link.href)).json();
    const found = parseNodeInfo(document, { tryBestEffort: false });
    if (found == null) return json(422, { error: "not valid NodeInfo", document });
    return json(200, { nodeinfo: nodeInfoToJson(found) });
  }
  if (url.pathname === "/control/parse" && request.method === "POST") {
    const { document } = await request.json();
    const parsed = await ASObject.fromJsonLd(document, {
      documentLoader: ctx.documentLoader,
      contextLoader: ctx.contextLoader,
    });
    return json(200, {
      type: parsed.constructor.name,
      jsonld: await parsed.toJsonLd({ format: "compact", contextLoader: ctx.contextLoader }),
    });
  }
  if (url.pathname === "/control/fetch" && request.method === "POST") {
    const { url: target, accept } = await request.json();
    const response = await fetch(target, { headers: { Accept: accept ?? "*/*" } });
    return json(200, {
      status: response.status,
      type: response.headers.get("Content-Type"),
      body: await response.text(),
    });
  }
  return json(404, { error: "not found" });
}

async function handle(request) {
  if (new URL(request.url).pathname.startsWith("/control/")) {
    try {
      return await control(request);
    } catch (error) {
      console.error("follower: control request failed", error);
      return json(500, { error: String(error?.stack ?? error) });
    }
  }
  return federation.fetch(request, { contextData: undefined });
}

// node:http in, a web Request to Fedify, its Response back out.
const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  const request = new Request(new URL(req.url, origin), {
    method: req.method,
    headers,
    body: hasBody ? Buffer.concat(chunks) : undefined,
  });
  const response = await handle(request);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(Buffer.from(await response.arrayBuffer()));
});
server.listen(port, "127.0.0.1", () => console.log(`follower: listening on ${origin}`));
