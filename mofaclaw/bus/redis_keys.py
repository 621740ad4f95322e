"""Where the Redis bus keeps things (one prefix per cluster), and the Lua scripts that make each step atomic."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "agents"  # the one consumer group: every replica's agent loop reads the inbound stream in it
STARTED_TTL_MS = 24 * 3600 * 1000  # a safety net only: the marker is deleted when its entry is acknowledged
CANCELLED_TTL_MS = 3600 * 1000  # longer than any turn waits in a queue
REPLY_MAXLEN = 10_000  # per replica; a reader that far behind has bigger problems than lost deltas


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    @property
    def inbound(self) -> str:
        return f"{self.prefix}:inbound"

    @property
    def events(self) -> str:
        """The pub/sub channel: cancels, released conversations, a freed leader lease."""
        return f"{self.prefix}:events"

    @property
    def leader(self) -> str:
        return f"{self.prefix}:leader"

    def replica(self, name: str) -> str:
        return f"{self.prefix}:replica:{name}"

    def replies(self, name: str) -> str:
        return f"{self.prefix}:replies:{name}"

    def lease(self, session_key: str) -> str:
        return f"{self.prefix}:conv:{session_key}:lease"

    def queue(self, session_key: str) -> str:
        return f"{self.prefix}:conv:{session_key}:queue"

    def started(self, request_id: str) -> str:
        return f"{self.prefix}:started:{request_id}"

    def cancelled(self, request_id: str) -> str:
        return f"{self.prefix}:cancelled:{request_id}"


# A conversation's queue is a sorted set whose members all score 0, so they sort by their text: a
# zero-padded position first (the stream entry id, or the Redis clock for a turn that never went
# through the stream), then "|s|<entry id>|<request id>" or "|a|<replica>|<unique>".
_POSITION = """
local function position(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return string.rep('0', 15 - #ms) .. ms .. '-' .. string.rep('0', 10 - #seq) .. seq
end
"""

# KEYS: inbound stream, conversation queue. ARGV: request id, message JSON. Queued in the conversation
# at the moment it is published, so its place is the stream order whichever replica claims it first.
PUBLISH_TURN = _POSITION + """
local id = redis.call('XADD', KEYS[1], '*', 'rid', ARGV[1], 'data', ARGV[2])
redis.call('ZADD', KEYS[2], 0, position(id) .. '|s|' .. id .. '|' .. ARGV[1])
return id
"""

# KEYS: conversation queue. ARGV: replica, unique id. A turn from agent.ask queues by the Redis clock.
QUEUE_ASK = _POSITION + """
local now = redis.call('TIME')
local member = position(now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000)) .. '-' .. now[2])
  .. '|a|' .. ARGV[1] .. '|' .. ARGV[2]
redis.call('ZADD', KEYS[1], 0, member)
return member
"""

# KEYS: conversation lease, conversation queue, inbound stream.
# ARGV: my member, my token, lease ms, prefix, request id ('' for agent.ask), started-marker ttl ms,
# group, entry id, my replica.
# Grants the lease to the head of the queue only, dropping heads that will never take it (a cancelled
# or acknowledged entry, an agent.ask of a dead replica). A dead replica's claimed entry stays at the
# head until another replica reclaims it, so the conversation keeps its order. An entry another replica
# reclaimed meanwhile (this one looked dead) is 'moved': it runs there, not here; one pending nowhere
# (Redis restarted without its data) is 'lost'.
ACQUIRE = """
local p, rid = ARGV[4], ARGV[5]
if rid ~= '' then
  local pending = redis.pcall('XPENDING', KEYS[3], ARGV[7], ARGV[8], ARGV[8], 1)
  if pending.err or not pending[1] then return 'lost' end
  if pending[1][2] ~= ARGV[9] then return 'moved' end
  if redis.call('EXISTS', p .. ':cancelled:' .. rid) == 1 then
    redis.call('ZREM', KEYS[2], ARGV[1])
    return 'cancelled'
  end
  if redis.call('EXISTS', p .. ':started:' .. rid) == 1 then return 'started' end
end
redis.call('ZADD', KEYS[2], 'NX', 0, ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return 'wait' end
while true do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if head == ARGV[1] then break end
  local gone = false
  local id, head_rid = string.match(head, '^[^|]*|s|([^|]*)|(.*)$')
  if id then
    gone = redis.call('EXISTS', p .. ':cancelled:' .. head_rid) == 1
      or #redis.call('XRANGE', KEYS[3], id, id) == 0
  else
    local replica = string.match(head, '^[^|]*|a|([^|]*)|')
    gone = not replica or redis.call('EXISTS', p .. ':replica:' .. replica) == 0
  end
  if not gone then return 'wait' end
  redis.call('ZREM', KEYS[2], head)
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if rid ~= '' then redis.call('SET', p .. ':started:' .. rid, ARGV[2], 'PX', ARGV[6]) end
return 'go'
"""

# KEYS: conversation lease, conversation queue, inbound stream.
# ARGV: my member, my token, prefix, request id, entry id ('' for agent.ask), group, events channel, session key.
# The end of a turn (run, refused or cancelled): free the conversation, acknowledge and forget the entry,
# and wake whoever waits for the conversation.
FINISH = """
local p, rid, id = ARGV[3], ARGV[4], ARGV[5]
if redis.call('GET', KEYS[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
if id ~= '' then
  redis.pcall('XACK', KEYS[3], ARGV[6], id)  -- no group: Redis restarted empty, nothing to acknowledge
  redis.call('XDEL', KEYS[3], id)
  redis.call('DEL', p .. ':started:' .. rid, p .. ':cancelled:' .. rid)
end
redis.call('PUBLISH', ARGV[7], 'r' .. ARGV[8])
return 1
"""

# KEYS: a lease. ARGV: token, lease ms. Extends the lease only while it is still ours.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: the leader lease. ARGV: replica, lease ms.
LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""

# KEYS: the leader lease. ARGV: replica, events channel.
RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'l')
end
return 1
"""

# KEYS: the target replica's liveness key, its reply stream. ARGV: message JSON, max length, ttl ms.
# A reply for a replica that is gone is dropped (0): nobody there waits for it any more.
REPLY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""
