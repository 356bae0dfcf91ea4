/**
 * Bad input and security: owner values (unique, ≥ 120 random bits, fresh per attempt), a wrong
 * owner value never touching the key (compare-and-act, watched with MONITOR), resource names that
 * look like Lua or RESP or contain braces, newlines and NUL bytes stored exactly as given, oversized
 * names refused before any call, an ACL user limited to `~lock:*`, TLS with a self-signed CA, and
 * no owner value or password in any error message or log line.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { Redis, type RedisOptions } from "ioredis"
import { execFileSync, spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Scripts from "../../src/internal/scripts.js"
import type * as Lock from "../../src/Lock.js"
import * as Redlock from "../../src/Redlock.js"
import * as RedlockError from "../../src/RedlockError.js"
import * as RedisNodes from "../support/RedisNodes.js"
import { eventually, resource } from "../support/setup.js"
import { assertReleased } from "../support/assertions.js"
import { awaitReady, client } from "./support/clients.js"


/** One client per node, connected (a lock decides on a quorum; the last node may answer later). */
const clientsOf = (cluster: RedisNodes.RedisNodes, options?: RedisOptions) =>
  Effect.forEach(cluster.nodes, (node) => Effect.flatMap(client(node.port, options), awaitReady))

interface Monitored {
  readonly args: ReadonlyArray<string>
  readonly source: string
}

/** Every command a node executes (including those run inside scripts, source "lua"), via MONITOR. */
const monitor = (port: number) =>
  Effect.gen(function*() {
    const seen: Array<Monitored> = []
    const redis = yield* Effect.acquireRelease(
      Effect.promise(() => new Redis({ host: "127.0.0.1", port, lazyConnect: true }).monitor()),
      (redis) => Effect.sync(() => redis.disconnect())
    )
    redis.on("monitor", (_time: string, args: ReadonlyArray<string>, source: string) => seen.push({ args, source }))
    yield* Effect.sleep("20 millis")
    return seen
  })

/**
 * Waits until every node holds `value` at `key`: a lock returns as soon as a quorum agreed, so
 * the last node's SET may still be on its way.
 */
const settled = (nodes: ReadonlyArray<RedisNodes.RedisNode>, key: string, value: string) =>
  Effect.gen(function*() {
    const until = Date.now() + 2_000
    while (Date.now() < until) {
      const values = yield* Effect.forEach(nodes, (node) => node.get(key))
      if (values.every((v) => v === value)) return
      yield* Effect.sleep("2 millis")
    }
  })

const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe("owner values", () => {
  it.live("10^6 values drawn like src (crypto.randomUUID): unique, UUID v4, 122 bits that all vary", () =>
    Effect.sync(() => {
      const draws = 1_000_000
      const seen = new Set<string>()
      const ones = new Uint32Array(128)
      for (let i = 0; i < draws; i++) {
        const value = randomUUID()
        seen.add(value)
        const hex = value.replaceAll("-", "")
        for (let nibble = 0; nibble < 32; nibble++) {
          const digit = parseInt(hex[nibble]!, 16)
          for (let bit = 0; bit < 4; bit++) if (digit & (8 >> bit)) ones[nibble * 4 + bit]!++
        }
        if (i < 1_000) assert.match(value, uuidV4)
      }
      assert.strictEqual(seen.size, draws)
      // The version (4 bits) and variant (2 bits) are fixed; every other bit is a fair coin:
      // 10^6 draws put each count within 5 standard deviations (5 × 500) of 500 000.
      const fixed = new Set([48, 49, 50, 51, 64, 65])
      let random = 0
      for (let bit = 0; bit < 128; bit++) {
        if (fixed.has(bit)) continue
        random++
        assert.approximately(ones[bit]!, draws / 2, 2_500, `bit ${bit}`)
      }
      assert.strictEqual(random, 122)
      assert.isAtLeast(random, 120)
    }), 60_000)

  it.scopedLive("real acquisitions: 3 000 lock values unique and UUID v4; every retry draws a fresh value", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const redlock = yield* Redlock.make({ clients: yield* clientsOf(cluster), ttl: 5_000 })
      const values = yield* Effect.forEach(Array.from({ length: 3_000 }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const lock = yield* redlock.lock(resource(`unique-${i}`))
          yield* redlock.release(lock)
          return lock.value
        }), { concurrency: 16 })
      assert.strictEqual(new Set(values).size, values.length)
      for (const value of values) assert.match(value, uuidV4)

      // Held elsewhere on two nodes: every attempt offers the free node a value of its own.
      // (With pub/sub wake-ups an acquisition may make more attempts than `times` + 1.)
      const name = resource("retries")
      for (const node of cluster.nodes.slice(1)) yield* node.call("SET", name, "someone-else", "PX", 10_000)
      const watched = yield* monitor(cluster.nodes[0]!.port)
      const failed = yield* Effect.flip(redlock.lock(name, { retry: { times: 4, delay: 10, jitter: 0 } }))
      if (failed._tag !== "LockContended") return assert.fail(failed.message)
      yield* Effect.sleep("50 millis")
      const offered = watched.filter((c) => c.source !== "lua" && c.args[0]?.toLowerCase() === "set" && c.args[1] === name)
        .map((c) => c.args[2])
      assert.isAtLeast(failed.attempts, 5)
      assert.strictEqual(offered.length, failed.attempts)
      assert.strictEqual(new Set(offered).size, offered.length)
      assert.notInclude(offered, "someone-else")
    }), 60_000)
})

describe("a wrong owner value never touches the key", () => {
  it.scopedLive("release and extend of a lock whose keys another owner now holds: only GET runs, key and ttl intact", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const redlock = yield* Redlock.make({ clients: yield* clientsOf(cluster), ttl: 10_000 })
      const name = resource("stolen")
      const lock = yield* redlock.lock(name)
      // The lock "expired" and another owner took every key, with a longer ttl.
      for (const node of cluster.nodes) yield* node.call("SET", name, "intruder", "PX", 30_000)
      const watched = yield* Effect.forEach(cluster.nodes, (node) => monitor(node.port))

      const lost = yield* Effect.flip(redlock.extend(lock))
      assert.strictEqual(lost._tag, "LockLost")
      if (lost._tag === "LockLost") assert.strictEqual(lost.reason, "taken")
      const report = yield* redlock.release(lock)
      assert.strictEqual(report.released, 0)
      assert.deepStrictEqual(report.nodes.map((n) => n.outcome), ["not-held", "not-held", "not-held"])
      yield* Effect.sleep("50 millis")
      // Snapshot before the checks below add their own GETs.
      const seen = watched.map((commands) => commands.slice())

      for (const [index, node] of cluster.nodes.entries()) {
        assert.strictEqual(yield* node.get(name), "intruder")
        const pttl = yield* node.pttl(name)
        assert.isTrue(pttl > 25_000 && pttl <= 30_000, `node ${index}: pttl ${pttl} was reset`)
        const touching = seen[index]!.filter((c) => c.args.includes(name))
        const byClient = touching.filter((c) => c.source !== "lua").map((c) => c.args[0]!.toLowerCase())
        const byScripts = touching.filter((c) => c.source === "lua").map((c) => c.args[0]!.toLowerCase())
        // The client sent the two compare-and-act scripts (EVAL only after a NOSCRIPT), nothing else.
        assert.includeMembers(["evalsha", "eval"], [...new Set(byClient)], `node ${index}: ${byClient}`)
        const shas = touching.filter((c) => c.args[0]!.toLowerCase() === "evalsha").map((c) => c.args[1])
        assert.includeMembers([Scripts.extend.sha, Scripts.release.sha], shas)
        // Inside the scripts, only reads: the owner did not match, so no DEL, no PEXPIRE, no SET.
        assert.isAbove(byScripts.length, 0)
        assert.deepStrictEqual([...new Set(byScripts)], ["get"], `node ${index}: ${byScripts}`)
      }
    }), 30_000)

  it.scopedLive("taken on one node only: release deletes ours on the others and leaves that one alone", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const redlock = yield* Redlock.make({ clients: yield* clientsOf(cluster), ttl: 10_000 })
      const name = resource("partly-stolen")
      const lock = yield* redlock.lock(name)
      yield* cluster.nodes[2]!.call("SET", name, "intruder", "PX", 30_000)
      yield* cluster.nodes[2]!.resetStats
      const report = yield* redlock.release(lock)
      assert.strictEqual(report.released, 2)
      // Done on the quorum; the third node's delete is not waited for: it ran, and did nothing.
      assert.deepStrictEqual(report.nodes.slice(0, 2).map((n) => n.outcome), ["released", "released"])
      assert.include(["not-held", "pending"], report.nodes[2]!.outcome)
      yield* eventually(cluster.nodes[2]!.commandCount("evalsha"), (count) => count === 1)
      assert.strictEqual(yield* cluster.nodes[0]!.get(name), null)
      assert.strictEqual(yield* cluster.nodes[1]!.get(name), null)
      assert.strictEqual(yield* cluster.nodes[2]!.get(name), "intruder")
      assert.isAbove(yield* cluster.nodes[2]!.pttl(name), 25_000)
    }), 30_000)
})

const hostileNames: ReadonlyArray<readonly [string, string]> = [
  ["Lua string break-out", "]]..redis.call('FLUSHALL')..[["],
  ["Lua quote break-out", "x'); redis.call('FLUSHALL'); --"],
  ["Lua long bracket", "[==[ ]==] redis.call(\"FLUSHALL\")"],
  ["open brace", "{"],
  ["close brace", "}"],
  ["hash tags", "{a}b{c}"],
  ["empty hash tag", "{}x"],
  ["newline", "line1\nline2"],
  ["RESP injection", "x\r\n*1\r\n$8\r\nFLUSHALL\r\n"],
  ["NUL byte", "nul\u0000byte"],
  ["only NUL", "\u0000"],
  ["unicode", "ünïcödé 🔒 ключ"],
  ["percent and backslash", "%s %d \\x00 \\n"],
  ["4096 characters (the limit)", "n".repeat(4_096)]
]

describe("resource names", () => {
  it.scopedLive("names that look like Lua or RESP, or contain braces, newlines or NUL are stored exactly as given", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const admin = yield* clientsOf(cluster)
      const redlock = yield* Redlock.make({ clients: yield* clientsOf(cluster), ttl: 10_000 })
      for (const redis of admin) yield* Effect.promise(() => redis.set("canary", "alive"))
      for (const [label, name] of hostileNames) {
        // One resource: a plain SET NX PX. Two resources: the acquire script, names as KEYS only.
        for (const resources of [[name], [name, `${name.slice(0, 4_000)}#2`]]) {
          const lock = yield* redlock.lock(resources)
          yield* settled(cluster.nodes, resources[resources.length - 1]!, lock.value)
          for (const redis of admin) {
            for (const key of resources) {
              const stored = yield* Effect.promise(() => redis.getBuffer(Buffer.from(key, "utf8")))
              assert.strictEqual(stored?.toString("utf8"), lock.value, `${label}: ${JSON.stringify(key)}`)
            }
            const keys = yield* Effect.promise(() => redis.keysBuffer("*"))
            const names = keys.map((key) => key.toString("utf8")).filter((key) => key !== "canary").sort()
            assert.deepStrictEqual(names, [...resources].sort(), label)
          }
          const extended = yield* redlock.extend(lock)
          assert.strictEqual(extended.extensions, 1)
          assertReleased(yield* redlock.release(lock), 2, label)
          for (const redis of admin) {
            const left = yield* eventually(Effect.promise(() => redis.keys("*")), (keys) => keys.length === 1)
            assert.deepStrictEqual(left, ["canary"], label)
          }
        }
      }
    }), 60_000)

  it.scopedLive("a 4097-character or 1 MB name is InvalidArgument, and no command reaches Redis", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const redlock = yield* Redlock.make({ clients: yield* clientsOf(cluster), ttl: 10_000 })
      for (const node of cluster.nodes) yield* node.resetStats
      for (const name of ["n".repeat(4_097), "m".repeat(1 << 20)]) {
        const lockError = yield* Effect.flip(redlock.lock(name))
        assert.strictEqual(lockError._tag, "InvalidArgument")
        const scoped = yield* Effect.flip(Effect.scoped(redlock.acquire(name)))
        assert.strictEqual(scoped._tag, "InvalidArgument")
        const tried = yield* Effect.flip(Effect.scoped(redlock.tryAcquire(name)))
        assert.strictEqual(tried._tag, "InvalidArgument")
        const withLock = yield* Effect.flip(redlock.withLock(Effect.void, [name]))
        assert.strictEqual(withLock._tag, "InvalidArgument")
        // The error names the limit, not the megabyte.
        assert.isBelow(lockError.message.length, 200)
      }
      for (const node of cluster.nodes) {
        const calls = yield* node.commandCalls
        for (const command of ["set", "evalsha", "eval", "get", "del", "pexpire"]) {
          assert.strictEqual(calls[command] ?? 0, 0, `${command} reached node ${node.index}`)
        }
      }
    }), 30_000)
})

const password = "S3cr3t-pa55-7f1d"

const aclUser = (node: RedisNodes.RedisNode) =>
  node.call(
    "ACL",
    "SETUSER",
    "locker",
    "reset",
    "on",
    `>${password}`,
    "~lock:*",
    "resetchannels",
    "-@all",
    "+@string",
    "+@keyspace",
    "+@scripting",
    "+@connection",
    "+info"
  )

describe("ACL and TLS", () => {
  it.scopedLive("an ACL user limited to ~lock:* works with keyPrefix 'lock:', and is refused without it", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      for (const node of cluster.nodes) yield* aclUser(node)
      const clients = yield* clientsOf(cluster, { username: "locker", password })
      const redlock = yield* Redlock.make({ clients, ttl: 5_000, keyPrefix: "lock:" })
      const name = resource("acl")
      const lock = yield* redlock.lock(name)
      yield* settled(cluster.nodes, `lock:${name}`, lock.value)
      for (const node of cluster.nodes) assert.strictEqual(yield* node.get(`lock:${name}`), lock.value)
      yield* redlock.extend(lock)
      assertReleased(yield* redlock.release(lock), 2)
      const many = yield* redlock.lock([`${name}:a`, `${name}:b`])
      yield* settled(cluster.nodes, `lock:${name}:b`, many.value)
      assertReleased(yield* redlock.release(many), 2)

      // Without the prefix the keys are outside the user's pattern: every node says NOPERM.
      const outside = yield* Redlock.make({ clients, ttl: 5_000, retry: { times: 0 } })
      const refused = yield* Effect.flip(outside.lock(name))
      assert.strictEqual(refused._tag, "QuorumUnavailable")
      if (refused._tag === "QuorumUnavailable") {
        const errors = refused.votes.filter((vote) => vote.outcome === "error")
        assert.isAtLeast(errors.length, 2)
        for (const vote of errors) assert.match(vote.error ?? "", /NOPERM/)
      }

      // The same through Redlock.layer with a Redacted password.
      yield* Effect.scoped(Effect.gen(function*() {
        const lock = yield* Redlock.acquire(name)
        yield* settled(cluster.nodes, `lock:${name}`, lock.value)
        for (const node of cluster.nodes) assert.strictEqual(yield* node.get(`lock:${name}`), lock.value)
      })).pipe(Effect.provide(Redlock.layer({
        nodes: cluster.urls,
        username: "locker",
        password: Redacted.make(password),
        keyPrefix: "lock:",
        ttl: 5_000
      })))
      for (const node of cluster.nodes) assert.deepStrictEqual(yield* node.keys("lock:*"), [])
    }), 30_000)

  it.scopedLive("TLS with a self-signed CA, passed through the client (and through Redlock.layer)", () =>
    Effect.gen(function*() {
      const tls = yield* certificates
      if (tls === undefined) return
      // One node per call: the TLS port differs per node; the plain port stays for the harness.
      const nodes = yield* Effect.forEach([0, 1, 2], () =>
        Effect.gen(function*() {
          const tlsPort = yield* freePort
          const cluster = yield* RedisNodes.make(1, {
            args: [
              "--tls-port",
              String(tlsPort),
              "--tls-cert-file",
              tls.serverCert,
              "--tls-key-file",
              tls.serverKey,
              "--tls-ca-cert-file",
              tls.caCert,
              "--tls-auth-clients",
              "no"
            ]
          })
          return { node: cluster.nodes[0]!, tlsPort }
        }))
      const ca = Fs.readFileSync(tls.caCert)
      const clients = yield* Effect.forEach(nodes, ({ tlsPort }) => client(tlsPort, { tls: { ca } }))
      const redlock = yield* Redlock.make({ clients, ttl: 5_000 })
      const name = resource("tls")
      const lock = yield* redlock.lock(name)
      yield* settled(nodes.map(({ node }) => node), name, lock.value)
      for (const { node, tlsPort } of nodes) {
        assert.strictEqual(yield* node.get(name), lock.value)
        // The lock's connection is the one on the TLS port.
        const list = String(yield* node.call("CLIENT", "LIST"))
        assert.include(list, `laddr=127.0.0.1:${tlsPort}`)
      }
      yield* redlock.extend(lock)
      assertReleased(yield* redlock.release(lock), 2)

      // Without the CA the handshake fails: the nodes are unavailable, not contended.
      const untrusting = yield* Effect.forEach(nodes, ({ tlsPort }) =>
        client(tlsPort, { tls: {}, enableOfflineQueue: false, retryStrategy: () => 1_000 }))
      yield* Effect.sleep("100 millis")
      const distrusted = yield* Redlock.make({ clients: untrusting, ttl: 5_000, retry: { times: 0 } })
      const refused = yield* Effect.flip(distrusted.lock(name))
      assert.strictEqual(refused._tag, "QuorumUnavailable")

      // rediss:// URLs through the layer, the CA in redisOptions.
      yield* Effect.scoped(Effect.gen(function*() {
        const lock = yield* Redlock.acquire(name)
        yield* settled(nodes.map(({ node }) => node), name, lock.value)
        for (const { node } of nodes) assert.strictEqual(yield* node.get(name), lock.value)
      })).pipe(Effect.provide(Redlock.layer({
        nodes: nodes.map(({ tlsPort }) => `rediss://127.0.0.1:${tlsPort}`),
        redisOptions: { tls: { ca } },
        ttl: 5_000
      })))
    }), 30_000)
})

const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** A CA and a server certificate for 127.0.0.1, made with openssl; undefined (test skipped) without TLS. */
const certificates = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-redlock-tls-"))
    // A build without TLS rejects the directive ("Bad directive"); with TLS it only complains
    // that it was told to listen nowhere.
    const probe = spawnSync("redis-server", ["--port", "0", "--tls-port", "0"], { encoding: "utf8", timeout: 5_000 })
    const built = !/Bad directive|unrecognized|not supported/i.test(`${probe.stdout}${probe.stderr}`)
    if (!built) {
      console.log("redis-server was built without TLS: TLS test skipped")
      return { dir, files: undefined }
    }
    const file = (name: string) => Path.join(dir, name)
    const ssl = (...args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" })
    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=effect-redlock test CA")
    ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    Fs.writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return { dir, files: { caCert: file("ca.crt"), serverCert: file("server.crt"), serverKey: file("server.key") } }
  }),
  ({ dir }) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map(({ files }) => files))

describe("no owner value or password in errors and logs", () => {
  it.scopedLive("contention, unavailability, NOPERM, WRONGPASS, lost locks and release warnings", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Layer.merge(
        Logger.replace(
          Logger.defaultLogger,
          Logger.map(Logger.logfmtLogger, (line) => {
            lines.push(line)
          })
        ),
        Logger.minimumLogLevel(LogLevel.All)
      )
      const texts: Array<string> = []
      const values = new Set<string>()
      const record = (error: RedlockError.RedlockError) => {
        texts.push(error.message, String(error), JSON.stringify(error))
        const encoded = Schema.encodeUnknownSync(Schema.Union(
          RedlockError.LockContended,
          RedlockError.QuorumUnavailable,
          RedlockError.LockLost,
          RedlockError.InvalidArgument
        ))(error)
        texts.push(JSON.stringify(encoded))
      }
      const keep = (lock: Lock.Lock) => {
        values.add(lock.value)
        return lock
      }

      const program = Effect.gen(function*() {
        const cluster = yield* RedisNodes.make(3)
        for (const node of cluster.nodes) yield* aclUser(node)
        // Every value any attempt offers (failed attempts' values included) is seen by MONITOR.
        const watched = yield* monitor(cluster.nodes[0]!.port)
        const clients = yield* clientsOf(cluster, { username: "locker", password })
        const redlock = yield* Redlock.make({ clients, ttl: 2_000, keyPrefix: "lock:", retry: { times: 2, delay: 10 } })
        const name = resource("secrets")

        // Contention: another owner (whose value is a secret too) holds the key on every node.
        const other = keep(yield* redlock.lock(name))
        record(yield* Effect.flip(redlock.lock(name)))
        // A lost lock: the keys change hands behind the owner's back.
        for (const node of cluster.nodes) yield* node.call("SET", `lock:${name}`, "intruder-value-9a7e", "PX", 10_000)
        record(yield* Effect.flip(redlock.extend(other)))
        yield* redlock.release(other)
        for (const node of cluster.nodes) yield* node.del(`lock:${name}`)

        // NOPERM: keys outside the user's pattern.
        const noPrefix = yield* Redlock.make({ clients, ttl: 2_000, retry: { times: 0 } })
        record(yield* Effect.flip(noPrefix.lock(name)))

        // withLock loses its lock mid-body (keys deleted on a majority): LockLost, body interrupted.
        const lost = yield* Effect.flip(redlock.withLock(name, { ttl: 600 })(
          Effect.gen(function*() {
            for (const node of cluster.nodes.slice(1)) yield* node.del(`lock:${name}`)
            yield* Effect.sleep("3 seconds")
          })
        ))
        if (lost._tag !== "LockLost") return assert.fail(`expected LockLost, got ${lost._tag}`)
        record(lost)

        // A node dies while a lock is held: the report says so, and a scope's release logs it (clients
        // that fail at once, so the dead node's error arrives before the quorum settles).
        const failFast = yield* clientsOf(cluster, { username: "locker", password, enableOfflineQueue: false })
        const quick = yield* Redlock.make({ clients: failFast, ttl: 2_000, keyPrefix: "lock:" })
        const held = keep(yield* quick.lock(name))
        yield* cluster.nodes[2]!.kill
        const report = yield* quick.release(held)
        assert.strictEqual(report.released, 2)
        yield* Effect.scoped(Effect.map(quick.acquire(name), keep))
        // Two nodes down: unavailable.
        yield* cluster.nodes[1]!.kill
        record(yield* Effect.flip(redlock.lock(name)))

        // WRONGPASS, through the layer with a password in the URL and one as Redacted.
        yield* cluster.nodes[1]!.restart
        yield* cluster.nodes[2]!.restart
        for (const node of cluster.nodes) yield* aclUser(node)
        const urls = cluster.nodes.map((node) => `redis://locker:${password}x@127.0.0.1:${node.port}`)
        const wrong = yield* Effect.flip(Effect.scoped(Effect.gen(function*() {
          yield* Redlock.acquire(name, { retry: { times: 0 } })
        })).pipe(Effect.provide(Redlock.layer({ nodes: urls, redisOptions: { maxRetriesPerRequest: 0 } }))))
        if (wrong._tag === "InvalidArgument") return assert.fail(wrong.message)
        record(wrong)
        const wrongRedacted = yield* Effect.flip(Effect.scoped(Effect.gen(function*() {
          yield* Redlock.acquire(name, { retry: { times: 0 } })
        })).pipe(Effect.provide(Redlock.layer({
          nodes: cluster.urls,
          username: "locker",
          password: Redacted.make(`${password}y`),
          redisOptions: { maxRetriesPerRequest: 0 }
        }))))
        if (wrongRedacted._tag === "InvalidArgument") return assert.fail(wrongRedacted.message)
        record(wrongRedacted)

        yield* Effect.sleep("50 millis")
        for (const command of watched) {
          if (command.source !== "lua" && command.args[0]?.toLowerCase() === "set" && command.args[1] === `lock:${name}`) {
            const value = command.args[2]
            if (value !== undefined && uuidV4.test(value)) values.add(value)
          }
        }
      })
      yield* program.pipe(Effect.provide(capture))

      assert.isAbove(values.size, 3)
      // The capture works and saw the library's own lines (debug level included).
      assert.isTrue(lines.some((line) => line.includes("effect-redlock")), `no library log line captured: ${lines.length} lines`)
      const everything = [...texts, ...lines]
      console.log(`checked ${texts.length} error texts and ${lines.length} log lines against ${values.size} owner values and the password; e.g.\n${
        [...new Set(texts.filter((_, i) => i % 4 === 0))].map((t) => `  ${t.slice(0, 160)}`).join("\n")
      }\n${lines.map((l) => `  ${l.slice(0, 220)}`).join("\n")}`)
      assert.isAbove(texts.length, 20)
      for (const text of everything) {
        assert.notInclude(text, password, "a password leaked")
        assert.notInclude(text, "intruder-value-9a7e", "another owner's value leaked")
        for (const value of values) assert.notInclude(text, value, `an owner value leaked: ${text.slice(0, 200)}`)
      }
    }), 60_000)
})
