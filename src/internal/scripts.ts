/**
 * The Lua scripts. Resource names travel only as KEYS and the owner value and ttl only as ARGV,
 * so no input is ever interpreted as code. Each script checks every key before it changes any,
 * which makes a multi-resource lock all or nothing on each node.
 */
import { createHash } from "node:crypto"

/** A script with its SHA1, for EVALSHA. */
export interface Script {
  readonly source: string
  readonly sha: string
}

const script = (source: string): Script => ({ source, sha: createHash("sha1").update(source).digest("hex") })

/** Sets every key to ARGV[1] with ttl ARGV[2] ms if none exists. Replies 1 (taken) or 0 (held). */
export const acquire = script(`
for i = 1, #KEYS do
  if redis.call("EXISTS", KEYS[i]) == 1 then return 0 end
end
for i = 1, #KEYS do
  redis.call("SET", KEYS[i], ARGV[1], "PX", ARGV[2])
end
return 1`)

/**
 * `acquire` with fencing counters: KEYS holds the lock's keys, then their counters in the same
 * order. When every key is free, sets them to ARGV[1] with ttl ARGV[2] ms and sets every counter
 * to the token: one more than the highest of them. Replies the token (at least 1), or 0 (held)
 * without changing anything.
 */
export const acquireFenced = script(`
local n = #KEYS / 2
for i = 1, n do
  if redis.call("EXISTS", KEYS[i]) == 1 then return 0 end
end
local token = 0
for i = 1, n do
  local count = tonumber(redis.call("GET", KEYS[n + i]) or "0")
  if count > token then token = count end
end
token = token + 1
for i = 1, n do
  redis.call("SET", KEYS[i], ARGV[1], "PX", ARGV[2])
  redis.call("SET", KEYS[n + i], token)
end
return token`)

/**
 * Raises the fencing counters (KEYS after the lock's keys, as in `acquireFenced`) to at least
 * ARGV[2] while every lock key still holds ARGV[1]. Replies 1 (raised) or 0 (a key is not ours).
 */
export const raiseFence = script(`
local n = #KEYS / 2
for i = 1, n do
  if redis.call("GET", KEYS[i]) ~= ARGV[1] then return 0 end
end
local token = tonumber(ARGV[2])
for i = 1, n do
  if tonumber(redis.call("GET", KEYS[n + i]) or "0") < token then redis.call("SET", KEYS[n + i], ARGV[2]) end
end
return 1`)

/**
 * Resets the ttl of every key to ARGV[2] ms if all of them hold ARGV[1]. Replies 1 (extended),
 * 0 (a key is gone: never recreated) or -1 (a key holds another owner's value).
 */
export const extend = script(`
local gone = false
for i = 1, #KEYS do
  local value = redis.call("GET", KEYS[i])
  if not value then
    gone = true
  elseif value ~= ARGV[1] then
    return -1
  end
end
if gone then return 0 end
for i = 1, #KEYS do
  redis.call("PEXPIRE", KEYS[i], ARGV[2])
end
return 1`)

/**
 * `extend` for several locks in one call. ARGV holds, per lock, its key count, owner value and
 * ttl; KEYS holds every lock's keys in the same order. Replies one `extend` reply per lock.
 */
export const extendMany = script(`
local replies = {}
local first = 0
for j = 1, #ARGV, 3 do
  local count, value = tonumber(ARGV[j]), ARGV[j + 1]
  local reply = 1
  for i = first + 1, first + count do
    local current = redis.call("GET", KEYS[i])
    if not current then
      reply = 0
    elseif current ~= value then
      reply = -1
      break
    end
  end
  if reply == 1 then
    for i = first + 1, first + count do
      redis.call("PEXPIRE", KEYS[i], ARGV[j + 2])
    end
  end
  replies[#replies + 1] = reply
  first = first + count
end
return replies`)

/**
 * Deletes every key that holds ARGV[1]. Replies the number of keys deleted. Unless ARGV[2] is
 * empty, announces each deletion on ARGV[2] .. key, for waiters, with a digest of the owner value
 * (never the value itself) so they can tell one release from the next. The announcement is best
 * effort (`pcall`): a user whose ACL forbids PUBLISH still releases.
 */
export const release = script(`
local deleted = 0
for i = 1, #KEYS do
  if redis.call("GET", KEYS[i]) == ARGV[1] then
    deleted = deleted + redis.call("DEL", KEYS[i])
    if ARGV[2] ~= "" then redis.pcall("PUBLISH", ARGV[2] .. KEYS[i], redis.sha1hex(ARGV[1])) end
  end
end
return deleted`)
