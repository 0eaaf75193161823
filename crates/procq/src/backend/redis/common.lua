-- procq on Redis: helpers shared by every script (the Rust side prepends this
-- file to each of them). All scripts take the same six KEYS and the queue's
-- key prefix as ARGV[1]; per-consumer and per-producer keys are derived from
-- the prefix, which carries the queue name as a hash tag so every key of one
-- queue hashes to the same slot.
local K_ITEMS, K_META, K_AVAIL, K_SPACE, K_LEASES, K_ZERO =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local PREFIX = ARGV[1]
-- Wake-up token lists never grow past this: a token only says "look again".
local TOKEN_CAP = 1024
-- How long a consumer's "late acknowledgement" allowance is remembered.
local LATE_TTL_MS = 86400000

-- The server's clock in milliseconds, so that every client agrees on
-- lease expiry whatever its own clock says.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Adds up to n wake-up tokens to a token list (waiters block on it with
-- BLPOP), keeping it at most TOKEN_CAP long.
local function signal(key, n)
  local want = math.min(n, TOKEN_CAP - redis.call('LLEN', key))
  if want > 0 then
    local ones = {}
    for i = 1, want do ones[i] = '1' end
    redis.call('LPUSH', key, unpack(ones))
  end
end

-- Puts back, at the head of the queue and in their original order, the
-- in-flight items of every consumer whose lease has run out, and remembers
-- how many each lost so that its late task_done() calls are not counted
-- twice (the redelivered copies will be acknowledged by their new owner).
local function reap(now)
  local dead = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, 64)
  for _, c in ipairs(dead) do
    local k = PREFIX .. ':inflight:' .. c
    local xs = redis.call('LRANGE', k, 0, -1)
    if #xs > 0 then
      local rev = {}
      for i = #xs, 1, -1 do rev[#rev + 1] = xs[i] end
      -- LPUSH in chunks to stay within Lua's argument stack; pushing the
      -- newest chunk first leaves the oldest item at the head.
      for i = 1, #rev, 1000 do
        redis.call('LPUSH', K_ITEMS, unpack(rev, i, math.min(i + 999, #rev)))
      end
      local late = PREFIX .. ':late:' .. c
      redis.call('INCRBY', late, #xs)
      redis.call('PEXPIRE', late, LATE_TTL_MS)
      redis.call('DEL', k)
      signal(K_AVAIL, #xs)
    end
    redis.call('ZREM', K_LEASES, c)
  end
end

-- Milliseconds until the earliest lease runs out, or -1 if none is held:
-- waiters never sleep past it, so a dead consumer's items come back on time.
local function next_expiry(now)
  local first = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
  if #first == 0 then return -1 end
  return math.max(0, tonumber(first[2]) - now)
end
