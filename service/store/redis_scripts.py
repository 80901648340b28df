"""Lua scripts of RedisStore: each runs atomically on the server, in one round trip.

Every session script gets the same six keys, all in the session's hash slot:
KEYS[1] meta (hash), KEYS[2] mem (hash second -> blob), KEYS[3] secs (zset of stored
seconds), KEYS[4] clips (hash clip index -> cached response), KEYS[5] seen (zset of indices),
KEYS[6] track (string: the person tracker's state, opaque bytes).
A record is returned as {created_at, ttl_s, lookahead_s, clips_seen, last_index,
stored_seconds, {seen...}}, or nil when the session does not exist.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class LuaScript:
    name: str
    source: bytes

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source).hexdigest()  # Redis names scripts by SHA1


_RECORD = """
local function record()
  local m = redis.call('HMGET', KEYS[1], 'created_at', 'ttl_s', 'lookahead_s', 'clips_seen',
                       'last_index')
  if not m[1] then return false end
  return {m[1], m[2], m[3], m[4], m[5], redis.call('ZCARD', KEYS[3]),
          redis.call('ZRANGE', KEYS[5], 0, -1)}
end
"""

_REFRESH = """
local function refresh(ttl)
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end
"""

# the server's clock: the time base of lock leases and commit deadlines
_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# ARGV: created_at, ttl_s, lookahead_s
CREATE = LuaScript("create", (_RECORD + """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('HSET', KEYS[1], 'created_at', ARGV[1], 'ttl_s', ARGV[2], 'lookahead_s', ARGV[3],
           'clips_seen', 0, 'last_index', -1, 'seen_floor', -1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return record()
""").encode())

RECORD = LuaScript("record", (_RECORD + "return record()\n").encode())

# KEYS: the six session keys, then KEYS[7] the session's lock.
# ARGV: clip_index, max_seconds, seen_cap, cached_responses, response, tracker state ('' keeps
# the stored one), lock token ('' : unfenced), deadline in server milliseconds ('' : none),
# then second, blob pairs. Fenced: a commit whose token no longer holds the lock, or that
# runs after the deadline (the client has given up on it, e.g. Redis was paused), returns
# 'fenced' and writes nothing. A clip index already seen (or at/below the highest index
# dropped from `seen`) is a no-op: its tracker state is not written either.
COMMIT = LuaScript("commit", (_RECORD + _REFRESH + _NOW_MS + """
if ARGV[7] ~= '' and redis.call('GET', KEYS[7]) ~= ARGV[7] then return 'fenced' end
if ARGV[8] ~= '' and now_ms() > tonumber(ARGV[8]) then return 'fenced' end
local m = redis.call('HMGET', KEYS[1], 'ttl_s', 'seen_floor', 'last_index')
if not m[1] then return false end
local index = tonumber(ARGV[1])
local floor = tonumber(m[2])
if index <= floor or redis.call('ZSCORE', KEYS[5], ARGV[1]) then return record() end

for i = 9, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i])
end
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[2])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[3], 0, excess - 1)
  for i = 1, #old, 1000 do
    redis.call('HDEL', KEYS[2], unpack(old, i, math.min(i + 999, #old)))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, excess - 1)
end

redis.call('ZADD', KEYS[5], index, ARGV[1])
local extra = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[3])
if extra > 0 then
  local highest_dropped = redis.call('ZRANGE', KEYS[5], extra - 1, extra - 1)[1]
  redis.call('HSET', KEYS[1], 'seen_floor', math.max(floor, tonumber(highest_dropped)))
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, extra - 1)
end

redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
if ARGV[6] ~= '' then redis.call('SET', KEYS[6], ARGV[6]) end
if redis.call('HLEN', KEYS[4]) > tonumber(ARGV[4]) then
  local cached = redis.call('HKEYS', KEYS[4])
  local oldest = tonumber(cached[1])
  for i = 2, #cached do oldest = math.min(oldest, tonumber(cached[i])) end
  redis.call('HDEL', KEYS[4], oldest)
end

redis.call('HINCRBY', KEYS[1], 'clips_seen', 1)
if index > tonumber(m[3]) then redis.call('HSET', KEYS[1], 'last_index', index) end
refresh(m[1])
return record()
""").encode())

TOUCH = LuaScript("touch", (_REFRESH + """
local ttl = redis.call('HGET', KEYS[1], 'ttl_s')
if not ttl then return 0 end
refresh(ttl)
return 1
""").encode())

# KEYS[1] lock; ARGV[1] token, ARGV[2] lease ms. The server's clock in ms when taken (the
# anchor of the commit's deadline), else false.
ACQUIRE = LuaScript("acquire", (_NOW_MS + """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return now_ms() end
return false
""").encode())

# KEYS[1] lock; ARGV[1] token, ARGV[2] lease ms. Extends only the holder's lease: the
# server's clock in ms, else false.
RENEW = LuaScript("renew", (_NOW_MS + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return now_ms()
""").encode())

# KEYS[1] lock; ARGV[1] token. Compare-and-delete: never release someone else's lock.
RELEASE = LuaScript("release", b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

ALL = (CREATE, RECORD, COMMIT, TOUCH, ACQUIRE, RENEW, RELEASE)
