-- W3 by cursor: GET /v1/users?sort=-createdAt&limit=20&cursor=C&count=MODE, C a random one of the
-- nextCursors run.py collected by walking the list before the run (pages 2..MAX_PAGE).
-- wrk ... -s w3_cursor.lua URL -- CURSORS_FILE COUNT_MODE TOKEN
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

local paths, headers

function init(args)
   paths = {}
   for i, cursor in ipairs(read_lines(args[1])) do
      paths[i] = "/v1/users?sort=-createdAt&limit=20&count=" .. args[2] .. "&cursor=" .. cursor
   end
   headers = { ["Authorization"] = "Bearer " .. args[3] }
   seed_random()
end

function request()
   return wrk.format("GET", paths[math.random(#paths)], headers)
end
