-- GCRA (the generic cell rate algorithm, as governor runs it in each process): spends one cell
-- of the bucket KEYS[1], atomically, in one round trip.
--
-- ARGV[1]: the emission interval, microseconds (may be fractional): one cell comes back every
--          interval.
-- ARGV[2]: the burst: how many cells a full bucket holds.
--
-- The bucket is one number, its theoretical arrival time (TAT), in microseconds since
-- 2025-01-01 UTC by Redis's own clock (`TIME`), so the processes sharing it need no common
-- clock. Counting from 2025 rather than 1970 keeps a double's precision at a few nanoseconds.
-- The key expires when the bucket is full again: an idle token or client costs nothing.
--
-- Returns {allowed (1 or 0), remaining cells, microseconds until one more cell may be spent
-- (0 while some remain), microseconds until the bucket is full again}.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
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
  -- Refused: nothing is spent, the bucket is left as it is.
  return {0, 0, math.ceil(next_tat - tolerance - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.17g', next_tat), 'PX',
  math.max(1, math.ceil((next_tat - now) / 1000)))
local remaining = math.floor((tolerance - (next_tat - now)) / interval + slack)
local wait = 0
if remaining < 1 then
  wait = math.max(0, math.ceil(next_tat + interval - tolerance - now))
end
return {1, remaining, wait, math.ceil(next_tat - now)}
