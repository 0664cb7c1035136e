# Shared by the GPU figure scripts: sourced, not run.
# step NAME LIMIT_SECONDS COMMAND...: run COMMAND under `timeout`, logging how it ended, so
# one slow step cannot take the others with it.
step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    local start=$SECONDS
    timeout "$limit" "$@"
    echo "== $name: exit $? after $((SECONDS - start)) s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
${PYTHON:-python3} -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
