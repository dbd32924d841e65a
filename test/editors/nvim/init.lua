-- Headless Neovim (0.7 API) end-to-end check of the qdq language server, driven by nvim.test.ts:
--   nvim --headless -n -i NONE -u init.lua model.py
-- (env QDQ_SERVER = path of bin/qdq-language-server.js, QDQ_NODE = the node binary, default `node` on PATH)
-- It attaches the server over stdio, waits for the TensorRT diagnostic, applies its quick fix, applies
-- "Quantize this layer" (resolved through codeAction/resolve, which also creates qdq_quant.py), writes every
-- buffer and quits. Each step prints one "STEP <name> <detail>" line; any failure prints "FAIL: ..." and
-- exits non-zero, so the node test can say which step broke.
local server = os.getenv('QDQ_SERVER')
local node = os.getenv('QDQ_NODE') or 'node'
local function log(...) io.stdout:write(table.concat(vim.tbl_map(tostring, { ... }), ' ') .. '\n') end
local function fail(msg)
  log('FAIL: ' .. msg)
  vim.cmd('cquit 1')
end

vim.api.nvim_create_autocmd('FileType', {
  pattern = 'python',
  callback = function(args)
    local client_id = vim.lsp.start_client({
      name = 'qdq',
      cmd = { node, server, '--stdio' },
      root_dir = vim.fn.getcwd(),
      flags = { debounce_text_changes = 0 },
      on_exit = function(code) log('STEP server-exit', code) end,
    })
    if not client_id then return fail('start_client returned nil') end
    vim.lsp.buf_attach_client(args.buf, client_id)
  end,
})

local function request(bufnr, method, params)
  local res, err = vim.lsp.buf_request_sync(bufnr, method, params, 15000)
  if err then return nil, err end
  for _, r in pairs(res or {}) do
    if r.error then return nil, r.error.message end
    return r.result
  end
  return nil, 'no response'
end

local function find_line(bufnr, needle)
  for i, line in ipairs(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)) do
    if line:find(needle, 1, true) then return i - 1 end
  end
end

local function code_actions(bufnr, lnum)
  return request(bufnr, 'textDocument/codeAction', {
    textDocument = vim.lsp.util.make_text_document_params(bufnr),
    range = { start = { line = lnum, character = 0 }, ['end'] = { line = lnum, character = 0 } },
    context = { diagnostics = vim.lsp.diagnostic.get_line_diagnostics(bufnr, lnum) },
  })
end

local function apply(client, bufnr, action)
  if not action.edit then
    local resolved, err = request(bufnr, 'codeAction/resolve', action)
    if not resolved then return fail('codeAction/resolve failed: ' .. tostring(err)) end
    action = resolved
  end
  if not action.edit then return fail('action has no edit: ' .. action.title) end
  vim.lsp.util.apply_workspace_edit(action.edit, client.offset_encoding)
  if action.command then
    local _, err = request(bufnr, 'workspace/executeCommand', action.command)
    if err then return fail('command failed: ' .. tostring(err)) end
  end
  return true
end

vim.api.nvim_create_autocmd('VimEnter', {
  callback = function()
    local ok_run, run_err = pcall(function()
      local bufnr = vim.api.nvim_get_current_buf()
      -- 1. the TensorRT diagnostic
      local function trt001()
        for _, d in ipairs(vim.diagnostic.get(bufnr)) do
          if d.code == 'TRT001' then return d end
        end
      end
      if not vim.wait(20000, function() return trt001() ~= nil end, 50) then return fail('no TRT001 diagnostic within 20s') end
      local d = trt001()
      log('STEP diagnostic', d.source, d.code, d.lnum + 1, d.message)
      local client = vim.lsp.get_active_clients()[1]

      -- 2. hover on the conv layer
      local conv_line = find_line(bufnr, 'nn.Conv2d(')
      local col = vim.api.nvim_buf_get_lines(bufnr, conv_line, conv_line + 1, false)[1]:find('nn.Conv2d', 1, true)
      local hover = request(bufnr, 'textDocument/hover', {
        textDocument = vim.lsp.util.make_text_document_params(bufnr),
        position = { line = conv_line, character = col + 2 },
      })
      if not hover or not hover.contents or not hover.contents.value:find('nn.Conv2d', 1, true) then return fail('no hover on nn.Conv2d') end
      log('STEP hover', (hover.contents.value:gsub('\n.*', '')))

      -- 3. the quick fix of the diagnostic
      local actions = code_actions(bufnr, d.lnum) or {}
      local quickfix
      for _, a in ipairs(actions) do
        if a.kind == 'quickfix' and not quickfix then quickfix = a end
      end
      if not quickfix then return fail('no quick fix for TRT001') end
      log('STEP quickfix', quickfix.title)
      if not apply(client, bufnr, quickfix) then return end
      if not vim.wait(10000, function() return trt001() == nil end, 50) then return fail('TRT001 still reported after its fix') end
      log('STEP fixed', vim.api.nvim_buf_get_lines(bufnr, d.lnum, d.lnum + 1, false)[1])

      -- 4. quantize the conv layer (listed without edit, resolved, creates qdq_quant.py)
      conv_line = find_line(bufnr, 'nn.Conv2d(')
      local quantize
      for _, a in ipairs(code_actions(bufnr, conv_line) or {}) do
        if a.title:find('^Quantize this layer') then quantize = a end
      end
      if not quantize then return fail('no "Quantize this layer" action on line ' .. (conv_line + 1)) end
      log('STEP action', quantize.title)
      if not apply(client, bufnr, quantize) then return end
      vim.cmd('silent wall')
      log('STEP line', vim.api.nvim_buf_get_lines(bufnr, find_line(bufnr, 'nn.Conv2d('), find_line(bufnr, 'nn.Conv2d(') + 1, false)[1])
      vim.lsp.stop_client(client.id)
      vim.wait(2000, function() return vim.tbl_isempty(vim.lsp.get_active_clients()) end, 50)
      log('STEP done')
    end)
    if not ok_run then return fail('error: ' .. tostring(run_err)) end
    vim.cmd('qall!')
  end,
})
