-- GCRA (the generic cell rate algorithm, as governor runs it in each process): spends one cell
-- of the bucket KEYS[1], atomically, in one round trip — and, for a token with a quota, one
-- use of the quota counted at KEYS[2], in the same round trip.
--
-- ARGV[1]: the emission interval, microseconds (may be fractional): one cell comes back every
--          interval. 0: no bucket (a token with a quota and no rate limit).
-- ARGV[2]: the burst: how many cells a full bucket holds.
-- ARGV[3]: the quota: how many uses the period allows (absent or 0: no quota).
-- ARGV[4]: when the quota's key expires, Unix seconds (the period's end, with a margin).
--
-- The bucket is one number, its theoretical arrival time (TAT), in microseconds since
-- 2025-01-01 UTC by Redis's own clock (`TIME`), so the processes sharing it need no common
-- clock. Counting from 2025 rather than 1970 keeps a double's precision at a few nanoseconds.
-- The key expires when the bucket is full again: an idle token or client costs nothing.
--
-- The quota is one counter a period (the key names the period): checked first, so a spent
-- quota spends no cell, and counted only when the bucket lets the request through.
--
-- Returns {allowed (1 or 0), remaining cells, microseconds until one more cell may be spent
-- (0 while some remain), microseconds until the bucket is full again, 1 when the quota
-- refused (else 0), the quota's uses in the period after this call (-1 without a quota)}.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local quota = tonumber(ARGV[3]) or 0
local quota_expires = tonumber(ARGV[4]) or 0

local used = -1
if quota > 0 then
  used = tonumber(redis.call('GET', KEYS[2])) or 0
  if used >= quota then
    return {0, 0, 0, 0, 1, used}
  end
end

local remaining, wait, reset = 0, 0, 0
if interval > 0 then
  local clock = redis.call('TIME')
  local now = (tonumber(clock[1]) - 1735689600) * 1000000 + tonumber(clock[2])
  local tolerance = interval * burst
  -- Rounding of fractional intervals must not cost a cell: a nanosecond of slack.
  local slack = 0.001

  local tat = tonumber(redis.call('GET', KEYS[1]))
  if tat == nil or tat < now then
    tat = now
  end
  local next_tat = tat + interval
  if next_tat - now > tolerance + slack then
    -- Refused: nothing is spent, the bucket (and the quota) left as they are.
    return {0, 0, math.ceil(next_tat - tolerance - now), math.ceil(tat - now), 0, used}
  end
  redis.call('SET', KEYS[1], string.format('%.17g', next_tat), 'PX',
    math.max(1, math.ceil((next_tat - now) / 1000)))
  remaining = math.floor((tolerance - (next_tat - now)) / interval + slack)
  if remaining < 1 then
    wait = math.max(0, math.ceil(next_tat + interval - tolerance - now))
  end
  reset = math.ceil(next_tat - now)
end

if quota > 0 then
  used = redis.call('INCR', KEYS[2])
  if used == 1 then
    redis.call('EXPIREAT', KEYS[2], quota_expires)
  end
end
return {1, remaining, wait, reset, 0, used}
