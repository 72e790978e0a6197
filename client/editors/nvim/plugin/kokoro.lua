-- Commands for kokoro.nvim (see lua/kokoro/init.lua).
if vim.g.loaded_kokoro then
  return
end
vim.g.loaded_kokoro = true

local function kokoro()
  return require("kokoro")
end

-- :KokoroSpeak speaks the buffer; with a range (or from Visual mode) those lines, and a
-- characterwise selection exactly as selected.
vim.api.nvim_create_user_command("KokoroSpeak", function(opts)
  local k = kokoro()
  if opts.range > 0 then
    local vs, ve = vim.fn.line("'<"), vim.fn.line("'>")
    if vim.fn.visualmode() ~= "" and opts.line1 == vs and opts.line2 == ve then
      k.speak_visual()
    else
      k.speak_lines(opts.line1, opts.line2)
    end
  else
    k.speak_lines(1, vim.api.nvim_buf_line_count(0))
  end
end, { range = true, desc = "Speak the buffer or the selected lines with kokorod" })

vim.api.nvim_create_user_command("KokoroStop", function(opts)
  kokoro().stop(opts.bang)
end, { bang = true, desc = "Stop this editor's speech (! = everyone's)" })

vim.api.nvim_create_user_command("KokoroPause", function()
  kokoro().pause()
end, { desc = "Pause kokorod's speech output" })

vim.api.nvim_create_user_command("KokoroResume", function()
  kokoro().resume()
end, { desc = "Resume kokorod's speech output" })

vim.keymap.set("x", "<Plug>(KokoroSpeak)", function()
  -- Leave Visual mode first so '< and '> mark this selection.
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Esc>", true, false, true), "nx", false)
  kokoro().speak_visual()
end, { desc = "Speak the selection with kokorod" })
