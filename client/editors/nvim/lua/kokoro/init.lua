-- kokoro.nvim: speak text through the local kokorod daemon.
--
-- Talks to the daemon's Unix socket directly (libuv pipe + vim.mpack frames:
-- a 4-byte big-endian length, then one msgpack map), so no Python process is
-- started per call. Requests carry `play = true`: the daemon plays the audio
-- itself and sends back events (start, playing, end / error).

local M = {}

M.config = {
  socket = nil, -- nil: $KOKORO_SOCKET, else what `kokorod socket` prints (asked once)
  program = "kokorod",
  autostart = true, -- `kokorod start` when the daemon is not running
  client_name = "nvim", -- :KokoroStop stops only this name's speech
  voice = nil, -- nil: the daemon's default; blends like "af_bella:0.6,af_sky:0.4"
  speed = 1.0,
  priority = "text", -- important | message | text | notification
  interrupt = true, -- new speech stops this editor's current speech
  highlight = true, -- highlight each word of spoken lines or selections as it is heard
}

local uv = vim.loop
local state = { pipe = nil, pending = "", next_id = 0, requests = {}, highlights = {} }
local ns = vim.api.nvim_create_namespace("kokoro_words")
M.namespace = ns
vim.api.nvim_set_hl(0, "KokoroWord", { default = true, link = "IncSearch" })
M._state = state

-- ------------------------------------------------------------------ frames

local function be32(n)
  return string.char(
    math.floor(n / 16777216) % 256,
    math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256,
    n % 256
  )
end

local function read_be32(s)
  local a, b, c, d = s:byte(1, 4)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

function M.frame(message)
  local body = vim.mpack.encode(message)
  return be32(#body) .. body
end

--- The byte offset (0-based) of character `chars` of UTF-8 `text`.
local function byte_of(text, chars)
  local b, n = 1, 0
  while n < chars and b <= #text do
    local c = text:byte(b)
    b = b + (c >= 0xF0 and 4 or c >= 0xE0 and 3 or c >= 0xC0 and 2 or 1)
    n = n + 1
  end
  return b - 1
end

--- Row and column (0-based) in the buffer of byte `offset` of text spoken from `where`.
local function position(where, offset)
  local row, col, line_start = where.row, nil, 0
  for i = 1, offset do
    if where.text:byte(i) == 10 then
      row, line_start = row + 1, i
    end
  end
  col = offset - line_start
  if row == where.row or where.block then
    col = col + where.col
  end
  return row, col
end

--- A word mark: the request's highlight moves to that word (scheduled: a libuv callback
--- may not touch buffers).
local function highlight(id, frame)
  local where = state.highlights[id]
  if not where or frame.kind ~= "word" or type(frame.span) ~= "table" then
    return
  end
  vim.schedule(function()
    if state.highlights[id] ~= where or not vim.api.nvim_buf_is_valid(where.buf) then
      return
    end
    local r0, c0 = position(where, byte_of(where.text, frame.span[1]))
    local r1, c1 = position(where, byte_of(where.text, frame.span[2]))
    if r1 ~= r0 then -- a span across a line break: up to the end of its first line
      r1, c1 = r0, #(vim.api.nvim_buf_get_lines(where.buf, r0, r0 + 1, false)[1] or "")
    end
    where.mark = vim.api.nvim_buf_set_extmark(where.buf, ns, r0, c0, {
      id = where.mark, end_row = r1, end_col = c1, hl_group = "KokoroWord",
    })
  end)
end

local function unhighlight(id)
  local where = state.highlights[id]
  state.highlights[id] = nil
  if where then
    vim.schedule(function()
      if vim.api.nvim_buf_is_valid(where.buf) and where.mark then
        vim.api.nvim_buf_del_extmark(where.buf, ns, where.mark)
      end
    end)
  end
end

local function dispatch(frame)
  local id = frame.id
  if frame.op == "mark" then -- not a state of the request: a word being heard
    highlight(id, frame)
    return
  end
  if id ~= nil and id ~= vim.NIL then
    state.requests[id] = frame
  end
  if frame.op == "end" or frame.op == "error" then
    unhighlight(id)
  end
  if frame.op == "error" then
    vim.schedule(function()
      vim.notify(("kokoro: %s [%s]"):format(frame.message, frame.code), vim.log.levels.WARN)
    end)
  end
end

local function on_read(err, data)
  if err or not data then
    if state.pipe then
      state.pipe:close()
    end
    state.pipe = nil
    state.pending = ""
    return
  end
  state.pending = state.pending .. data
  while #state.pending >= 4 do
    local n = read_be32(state.pending)
    if #state.pending < 4 + n then
      break
    end
    local body = state.pending:sub(5, 4 + n)
    state.pending = state.pending:sub(5 + n)
    local ok, frame = pcall(vim.mpack.decode, body)
    if ok and type(frame) == "table" then
      dispatch(frame)
    end
  end
end

-- ------------------------------------------------------------------ connection

local function socket_path()
  local c = M.config
  if c.socket then
    return c.socket
  end
  local env = vim.env.KOKORO_SOCKET
  if env and env ~= "" then
    return env
  end
  local out = vim.fn.system({ c.program, "socket" })
  if vim.v.shell_error ~= 0 then
    error("kokoro: `" .. c.program .. " socket` failed: " .. out)
  end
  c.socket = vim.trim(out)
  return c.socket
end

local function try_connect(path)
  local pipe = uv.new_pipe(false)
  local done, failure = false, nil
  pipe:connect(path, function(err)
    failure, done = err, true
  end)
  vim.wait(5000, function()
    return done
  end, 10)
  if not done or failure then
    pipe:close()
    return nil, failure or "timed out"
  end
  return pipe
end

function M.next_id()
  state.next_id = state.next_id + 1
  return state.next_id
end

local function connection()
  if state.pipe and not state.pipe:is_closing() then
    return state.pipe
  end
  local path = socket_path()
  local pipe, err = try_connect(path)
  if not pipe and M.config.autostart then
    vim.notify("kokoro: starting the daemon…")
    vim.fn.system({ M.config.program, "start" })
    pipe, err = try_connect(path)
  end
  if not pipe then
    error("kokoro: cannot reach kokorod at " .. path .. " (" .. tostring(err) .. ")")
  end
  state.pipe, state.pending = pipe, ""
  pipe:read_start(on_read)
  pipe:write(M.frame({ op = "hello", id = M.next_id(), client_name = M.config.client_name }))
  return pipe
end

--- Send `op` with `fields`; returns the request id.
function M.request(op, fields)
  local pipe = connection()
  local message = vim.tbl_extend("force", fields or {}, { op = op, id = M.next_id() })
  state.requests[message.id] = nil
  pipe:write(M.frame(message))
  return message.id
end

--- The op of the last frame for request `id` (start, playing, end, error) or nil.
function M.state_of(id)
  local frame = state.requests[id]
  return frame and frame.op
end

--- Wait until request `id` sends one of `ops` (default: end or error); the frame or nil.
function M.wait(id, timeout_ms, ops)
  ops = ops or { "end", "error" }
  local function reached()
    return vim.tbl_contains(ops, M.state_of(id))
  end
  vim.wait(timeout_ms or 60000, reached, 20)
  if reached() then
    return state.requests[id]
  end
  return nil
end

-- ------------------------------------------------------------------ speech

--- How the daemon should read buffer `buf`: markdown, code or plain.
function M.text_format(buf)
  local ft = vim.bo[buf or 0].filetype
  if ft == "markdown" or ft == "rmd" or ft == "org" or ft == "rst" or ft == "asciidoc" then
    return "markdown"
  elseif ft == "" or ft == "text" or ft == "help" or ft == "gitcommit" or ft == "mail"
      or ft == "tex" or ft == "plaintex" or ft == "latex" then
    return "plain"
  end
  return "code"
end

--- Speak `text`; returns the request id. `opts` may override the config fields;
--- `opts.where = { buf, row, col, block }` (0-based; `block`: every line starts at
--- `col`) says where the text is in a buffer, whose words are then highlighted.
function M.speak(text, opts)
  opts = vim.tbl_extend("force", M.config, opts or {})
  if not text or vim.trim(text) == "" then
    vim.notify("kokoro: nothing to say", vim.log.levels.WARN)
    return nil
  end
  local fields = {
    text = text,
    play = true,
    text_format = opts.text_format or "plain",
    speed = opts.speed,
    priority = opts.priority,
    mode = opts.interrupt and "interrupt" or "queue",
  }
  if opts.voice then
    fields.voice = opts.voice
  end
  local where = opts.highlight and opts.where
  if where then
    fields.marks = "word"
  end
  M.last_speech = M.request("synthesize", fields)
  if where then
    state.highlights[M.last_speech] = vim.tbl_extend("force", where, {
      buf = where.buf == 0 and vim.api.nvim_get_current_buf() or where.buf, text = text,
    })
  end
  return M.last_speech
end

--- Speak lines `first`..`last` (1-based, inclusive) of the current buffer.
function M.speak_lines(first, last)
  local lines = vim.api.nvim_buf_get_lines(0, first - 1, last, false)
  return M.speak(table.concat(lines, "\n"), {
    text_format = M.text_format(0), where = { buf = 0, row = first - 1, col = 0 },
  })
end

--- The last byte of the character that starts at byte `col` of `line`: a selection that
--- ends on "é" or "界" must take the whole UTF-8 sequence, not its first byte.
local function char_end(line, col)
  local lead = line:byte(col)
  if not lead then
    return col
  end
  local size = lead >= 0xF0 and 4 or lead >= 0xE0 and 3 or lead >= 0xC0 and 2 or 1
  return col + size - 1
end

--- Speak the last visual selection exactly (characterwise, linewise or blockwise).
function M.speak_visual()
  local mode = vim.fn.visualmode()
  local s, e = vim.fn.getpos("'<"), vim.fn.getpos("'>")
  local lines = vim.api.nvim_buf_get_lines(0, s[2] - 1, e[2], false)
  if #lines == 0 then
    return nil
  end
  local where = { buf = 0, row = s[2] - 1, col = 0 }
  if mode == "v" then
    lines[#lines] = lines[#lines]:sub(1, char_end(lines[#lines], e[3]))
    lines[1] = lines[1]:sub(s[3])
    where.col = s[3] - 1
  elseif mode == "\22" then -- blockwise
    for i, line in ipairs(lines) do
      lines[i] = line:sub(s[3], char_end(line, e[3]))
    end
    where.col, where.block = s[3] - 1, true
  end
  return M.speak(table.concat(lines, "\n"), { text_format = M.text_format(0), where = where })
end

local function control(op, fields)
  local reply = M.wait(M.request(op, fields), 10000, { op, "error" })
  if not reply then
    error("kokoro: no reply to " .. op)
  end
  return reply
end

--- Stop this editor's speech (everyone's with `everyone`); how many utterances ended.
function M.stop(everyone)
  return control("stop", { scope = everyone and "all" or "client" }).stopped
end

function M.pause()
  return control("pause")
end

function M.resume()
  return control("resume")
end

function M.setup(opts)
  M.config = vim.tbl_extend("force", M.config, opts or {})
end

return M
