# json.sh - sourced by perf's scripts: JSON_FIELD, an awk function that
# reads one field of the flat JSON lines qkv-bench and the studies print.
# Put it in front of an awk program: awk "$JSON_FIELD"'{ print field("x") }'
JSON_FIELD='
function field(name,   m) {
    if (match($0, "\"" name "\":\"?[^,\"}]*")) {
        m = substr($0, RSTART, RLENGTH)
        sub(/^"[^"]*":"?/, "", m)
        return m
    }
    return ""
}
'
