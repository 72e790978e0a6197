-- Headless tests for kokoro.nvim against a real daemon.
-- Run: KOKORO_SOCKET=… nvim --headless -u NONE -i NONE \
--        --cmd "set rtp^=client/editors/nvim" -c "runtime plugin/kokoro.lua" \
--        -c "luafile client/editors/nvim/tests/kokoro_test.lua"
-- Prints one line per test and quits with the number of failures as exit status.

local k = require("kokoro")
k.setup({ autostart = false })

local tests, failures = {}, 0

local function test(name, fn)
  table.insert(tests, { name = name, fn = fn })
end

local function eq(a, b, what)
  if a ~= b then
    error(("%s: expected %s, got %s"):format(what or "value", vim.inspect(b), vim.inspect(a)), 2)
  end
end

local function buffer(lines, filetype)
  vim.cmd("enew!")
  vim.api.nvim_buf_set_lines(0, 0, -1, false, lines)
  vim.bo.filetype = filetype or "text"
end

test("frames: 4-byte big-endian length, then msgpack", function()
  local f = k.frame({ op = "ping", id = 7 })
  local a, b, c, d = f:byte(1, 4)
  eq(((a * 256 + b) * 256 + c) * 256 + d, #f - 4, "length")
  eq(vim.mpack.decode(f:sub(5)).op, "ping", "op")
end)

test("text format follows the filetype", function()
  buffer({ "x" }, "markdown")
  eq(k.text_format(0), "markdown")
  vim.bo.filetype = "python"
  eq(k.text_format(0), "code")
  vim.bo.filetype = "text"
  eq(k.text_format(0), "plain")
end)

test(":KokoroSpeak on a range speaks, :KokoroStop stops it", function()
  local lines = { "This first line is not spoken." }
  for i = 1, 15 do
    table.insert(lines, ("Line %d of the range, read aloud by the daemon."):format(i))
  end
  buffer(lines)
  vim.cmd("2,16KokoroSpeak")
  local id = k.last_speech
  assert(k.wait(id, 120000, { "playing" }), "never started playing: " .. tostring(k.state_of(id)))
  vim.cmd("KokoroStop")
  local done = k.wait(id, 30000)
  assert(done, "no end after :KokoroStop")
  eq(done.op, "end", "op")
  eq(done.reason, "stopped", "reason")
  assert(done.audio_seconds > 0 and done.audio_seconds < 60, "audio " .. done.audio_seconds)
end)

test("a characterwise visual selection is spoken exactly, to the end", function()
  buffer({ "skip this Hello from Neovim. and not this" })
  vim.cmd("normal! 0fHvf.\27") -- select "Hello from Neovim."
  vim.cmd("'<,'>KokoroSpeak")
  local done = k.wait(k.last_speech, 120000)
  assert(done, "no end")
  eq(done.reason, "done", "reason")
  -- ~18 characters of speech: about 1-3 s, far less than the whole line.
  assert(done.audio_seconds > 0.5 and done.audio_seconds < 3.0, "audio " .. done.audio_seconds)
end)

test("a selection that ends on a multi-byte character is sent whole", function()
  local sent
  local speak = k.speak
  k.speak = function(text) -- what the selection gives, without speaking it
    sent = text
  end
  buffer({ "Ceci est un café" })
  vim.cmd("normal! $bv$\27") -- "café": its last character is two bytes
  vim.cmd("'<,'>KokoroSpeak")
  eq(sent, "café", "text")
  buffer({ "こんにちは世界" })
  vim.cmd("normal! 0lvl\27") -- "んに": three bytes each
  vim.cmd("'<,'>KokoroSpeak")
  k.speak = speak
  eq(sent, "んに", "text")
end)

test("rst and tex are read as prose, not as code", function()
  buffer({ "x" }, "rst")
  eq(k.text_format(0), "markdown")
  vim.bo.filetype = "tex"
  eq(k.text_format(0), "plain")
end)

--- The highlighted word of request `id` as { row, col, text }, or nil.
local function highlighted()
  local marks = vim.api.nvim_buf_get_extmarks(0, k.namespace, 0, -1, { details = true })
  if #marks == 0 then
    return nil
  end
  local _, row, col, details = unpack(marks[1])
  local line = vim.api.nvim_buf_get_lines(0, row, row + 1, false)[1]
  return { row = row, col = col, text = line:sub(col + 1, details.end_col) }
end

test("words are highlighted as they are heard, in order, and cleared at the end", function()
  buffer({ "Not spoken.", "Seven small birds sang on the old stone wall.", "Then they flew away." })
  vim.cmd("2,3KokoroSpeak")
  local id, seen = k.last_speech, {}
  vim.wait(120000, function()
    local now = highlighted()
    local last = seen[#seen]
    if now and (not last or now.row ~= last.row or now.col ~= last.col) then
      table.insert(seen, now)
    end
    return k.state_of(id) == "end" or k.state_of(id) == "error"
  end, 10)
  eq(k.state_of(id), "end", "final frame")
  assert(#seen >= 6, "words highlighted: " .. vim.inspect(seen))
  eq(seen[1].text, "Seven", "first word")
  eq(seen[1].row, 1, "first row")
  for i, w in ipairs(seen) do
    assert(w.text:match("^%a+$"), "not a word: " .. vim.inspect(w))
    if i > 1 then
      local p = seen[i - 1]
      assert(w.row > p.row or (w.row == p.row and w.col > p.col), "out of order: " .. vim.inspect(seen))
    end
  end
  eq(seen[#seen].row, 2, "the second line is reached")
  vim.wait(500, function() return highlighted() == nil end, 10)
  eq(highlighted(), nil, "highlight after the end")
end)

test("a characterwise selection is highlighted where it is; stop clears it", function()
  local line = ("Skip this. " .. ("Words of a long selection are spoken here. "):rep(10))
  buffer({ line })
  vim.cmd("normal! 0fWv$\27")
  vim.cmd("'<,'>KokoroSpeak")
  local id = k.last_speech
  assert(vim.wait(120000, function() return highlighted() ~= nil end, 10), "no highlight")
  local first = highlighted()
  eq(first.text, "Words", "first word")
  eq(first.col, 11, "its column")
  vim.cmd("KokoroStop")
  eq(k.wait(id, 30000).reason, "stopped", "reason")
  vim.wait(500, function() return highlighted() == nil end, 10)
  eq(highlighted(), nil, "highlight after stop")
end)

test("pause and resume reply", function()
  eq(k.pause().paused, true, "paused")
  eq(k.resume().paused, false, "resumed")
end)

test("an unknown voice is an error frame, and the daemon keeps serving", function()
  local id = k.speak("Hi.", { voice = "no_such_voice" })
  local done = k.wait(id, 30000)
  eq(done.op, "error", "op")
  eq(done.code, "unknown_voice", "code")
  eq(k.stop(), 0, "nothing left to stop")
end)

for _, t in ipairs(tests) do
  local ok, err = pcall(t.fn)
  if ok then
    io.stdout:write("ok    " .. t.name .. "\n")
  else
    failures = failures + 1
    io.stdout:write("FAIL  " .. t.name .. ": " .. tostring(err) .. "\n")
  end
end
io.stdout:write(("%d tests, %d failed\n"):format(#tests, failures))
if failures > 0 then
  vim.cmd("cquit " .. failures)
else
  vim.cmd("qall!")
end
