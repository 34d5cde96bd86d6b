"""Every registry file the dataset builders read, pinned by version and SHA-256 (one table for all builders).

Debian 12 (bookworm) binary packages (hashes from the archive index, ``apt-cache show NAME=VERSION``), PyPI
sdists and wheels and npm tarballs (hashes of the files the registries serve). ``libruby3.1 3.1.7-1~deb12u2``
has left the Debian archive (superseded by ``3.1.7+really3.1.2``) before its hash was recorded: apt checks it
against the archive index if it comes back; otherwise place that ``.deb`` in the package cache by hand
(``<cache>/debian/libruby3.1/3.1.7-1~deb12u2/``, see :func:`mixlab.builders.fetch.cache_dir`).
"""

from __future__ import annotations

from mixlab.builders.fetch import Package


def _deb(name: str, version: str, sha256: str | None) -> Package:
    return Package("debian", name, version, sha256)


# fmt: off
DEBIAN: dict[str, Package] = {p.name: p for p in (
    _deb("debian-faq", "11.1", "427426e0cfa6888622fc1d72631071cb4b5a1f86ccde722e7820bcef284de5d0"),
    _deb("debian-reference-en", "2.100", "9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f"),
    _deb("dict-devil", "1.0-13.1", "6a535684def2a1f70cd42da16d12d43f0e9dc3e54e4a329178eebab3170e3154"),
    _deb("erlang-src", "1:25.2.3+dfsg-1+deb12u4", "52fc8fbd533e0d094514ba54ff7b7a3244b2cf02a4905cf36dfeccb346d3479b"),
    _deb("glibc-source", "2.36-9+deb12u14", "8e9f57b1df23396b05cf5b1561fd83bd53dc01b86432fd2dc75ab7b48645c3b2"),
    _deb("gnat-12", "12.2.0-14+deb12u1", "a39315ef32c1b9a17a2be5e3540ba6f91c441e808211d609e63e3d44f9114e53"),
    _deb("golang-1.19-src", "1.19.8-2", "2dfa82fe4f08f4e0193c532e561af4c91871f5235608f04f2bb8d57bb288df5a"),
    _deb("googletest", "1.12.1-0.2", "927be72067517da503b6538026d451455c9e860f5dbfe237f792543db7d5a928"),
    _deb("libjs-sphinxdoc", "5.3.0-4", "93c0e211e0399659b224a49f86147bac4b2282b7e23fbfaa2edf990979cee59a"),
    _deb("libruby3.1", "3.1.7-1~deb12u2", None),  # no longer in the archive: see the module docstring
    _deb("lua-penlight", "1.13.1-3", "69918434ee650d06aa470d49ba05a1a16ae43e66b8216e135cc5075f7d5d9ff3"),
    _deb("nodejs-doc", "18.20.4+dfsg-1~deb12u3", "d2fbd4f3aecccea9d901a03842ef8380379e0d33010a48af5e797ed68ae874ce"),
    _deb("openjdk-17-source", "17.0.21.1+2-1~deb12u1", "5106aa3881e3b49568823ebdfc3755d4043f6f53bbfc996d0efee03172dc0a9b"),
    _deb("php-league-commonmark", "2.3.9-1+deb12u1", "c702ba9fbe6727f011f25eba2bdb89871b56f37d811092e51089816df8eecd81"),
    _deb("postgresql-15", "15.20-0+deb12u1", "8566850f295c2cb5034ff5dd5b40caf97eea81b75a841c8d1f691c05ab8815db"),
    _deb("python-nbsphinx-doc", "0.8.11+ds-1", "cef34cd5345e67a97b84767438379629c3740f8874627bdb5e79b93508eb6014"),
    _deb("python-statsmodels-doc", "0.13.5+dfsg-7", "4167a3e13347343b9f0a6677fc804ecad80dd735d17bc051829610f6f1bc2afb"),
    _deb("python3.11-doc", "3.11.2-6+deb12u9", "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be"),
    _deb("r-cran-coin", "1.4-2-1+b1", "391bda13701acba6329f821cfde3571827bd7a4cff91b66511945f1c9e7fa9aa"),
    _deb("r-cran-lmtest", "0.9.40-1", "ce2a709e7bb917f2b435314038e69ac8d32d71426f91c01b0332cb39b5020bf7"),
    _deb("r-cran-party", "1.3-11-1", "ecca5564178b27b54228a5edace4d2b42493bc8635b251826cee4bd5bd1b7457"),
    _deb("r-cran-sandwich", "3.0-2-1", "a90e7d3c69c70a6d73e4bc63d1f20eae3b4a73866d5266246dd5b3d980c60d79"),
    _deb("r-cran-strucchange", "1.5-3-1", "0be3f44609be4e90be3f295880dbcaebf57e5a918b68eb11f18c0900b2a4874d"),
    _deb("r-cran-vcd", "1:1.4-11-1", "959639853b06a9056b4494e145bf84394a329805645e80c4384091323b6c6ae4"),
    _deb("r-cran-zoo", "1.8-11-1", "81f27bbee835d9d44d2a410211c813d2da6c2d71f1e37d71b019ab259e182b9b"),
    _deb("rust-src", "1.63.0+dfsg1-2", "410b8c6d464cabbe5fb3154ab8c3d374980dd597fbe7e3b7bb3ed8dd1bf11e25"),
    _deb("swi-prolog-core", "9.0.4+dfsg-2", "6a6cf6baf16a912311badee31b184d5678f5a8b223fe71601ce6d96853da9c70"),
    _deb("tcllib", "1.21+dfsg-1", "6bf4cbb66b52d47dcf02e8de4469597d25dc475668d49f8b7f3f3135e3eb2d08"),
    # the code-in-text detector's held-out test set (mixlab.builders.detector_heldout)
    _deb("base-files", "12.4+deb12u15", "3eb1ea6d85488f488cc2a163b98ad640ef88cee4c79287cf14e361aaf6206f47"),
    _deb("bash-completion", "1:2.11-6", "8f79fbfae64b85ea54f63c6db688f2cd8cb079f40b6164f8b1f9451e37790549"),
    _deb("elpa-dash", "2.19.1+git20220608.1.0ac1ecf+dfsg-1", "a08d1604f7230841210e4899cd86985bd82a166a8ca944650a7f6887868fa0ab"),
    _deb("fortunes", "1:1.99.1-7.3", "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5"),
    _deb("golang-github-pkg-errors-dev", "0.9.1-2", "87227544904795f81d8c660b7854045a1ef78d5c690993bb4a0c43e05104ca64"),
    _deb("libfmt-dev", "9.1.0+ds1-2", "c8fa00dd0269e6eda9fd06668df3d720de4b5a1f647dcd3c6e0ba63f0cbf2150"),
    _deb("librust-either-dev", "1.6.1-1", "2121396d02d07eefa389929ae695533bfc996fd5f9022b6f1b9305bf7ba7a129"),
    _deb("libtry-tiny-perl", "0.31-2", "6ab33d9ead6f7608aee27537d6052a6b071a3915c8d4e0eae8e092bf2d5ce257"),
    _deb("logrotate", "3.21.0-1", "4e6acd31f55af85b2f12bd61a636c84e19fc1d0f419540b71bbe8aba6985aa32"),
    _deb("php-psr-log", "1.1.4-2", "737d70a65a1bfa16ea8b09892592d35824171729d3f781a7c32250e5b28416d7"),
    _deb("ruby-rack", "2.2.22-0+deb12u2", "7ba26a66f6981b48ac604c9b829de51bdfc5d5ec8f329cf823b0aab72f718354"),
    _deb("yamllint", "1.29.0-1", "8ed6ca15e4e6302b9a951cc1d2bb2d4d7e97561abc4a64a8919eaedbf2ac539d"),
)}
PYGMENTS = Package("pypi", "pygments", "2.18.0", "786ff802f32e91311bff3889f6e9a86e81505fe99f2735bb6d60ae0c5004f199", "sdist")
CLICK = Package("pypi", "click", "8.1.7", "ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de", "sdist")
GENSIM = Package(  # the wheel, for its test data (an enwiki excerpt, the Lee news corpus)
    "pypi", "gensim", "4.3.3", "d662bf96e3d741b6ab61a54be842a7cbf5e45193008b2f4225c758cafd7f9cdc", "wheel"
)
GITHUB3 = Package(  # the sdist, for its recorded GitHub API responses (tests/cassettes): real issue threads
    "pypi", "github3.py", "4.0.1", "30d571076753efc389edc7f9aaef338a4fcb24b54d8968d5f39b1342f45ddd36", "sdist"
)
EVALS = Package("pypi", "evals", "3.0.1.post1", "0abcb2051303500784b1641a6e4f6b813ed43ad64f879a37d344a6774eb8eb78", "wheel")
BIGBENCH = Package(  # a 358 MB sdist
    "pypi", "bigbench", "1.0.0", "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2", "sdist"
)
BOOTSTRAP = Package("npm", "bootstrap", "5.3.3", "38cee936dbd80138de6775683149f22e9226fc2d654392337a921f53000c789e")
RXJS = Package("npm", "rxjs", "7.8.1", "c532167725ab7d085123209156c93cef22f2479cb9c8527060f1cd903aa9d149")
HELDOUT_NPM: dict[str, Package] = {p.name: p for p in (  # the detector's held-out test set
    Package("npm", "commander", "12.1.0", "56affc6ddafe486f94b428ae2823d059cf60d4dae2f33eaaf1b1ec4306f73173"),
    Package("npm", "express", "4.21.2", "fc43a91e7dc7affb53c6ad7123a4f35485ed3c45226ae7a3847b7738e783e008"),
    Package("npm", "js-yaml", "4.1.0", "0dae332559cf22b21c26ea70e732afd8303ff99412f9c3d9d209faa8882cf2ca"),
)}
HELDOUT_PYPI: dict[str, Package] = {p.name: p for p in (  # sdists, the detector's held-out test set
    Package("pypi", "tomli", "2.0.1", "de526c12914f0c550d15924c62d72abc48d6fe7364aa87328337a31007fe8a4f", "sdist"),
    Package("pypi", "sqlparse", "0.5.1", "bb6b4df465655ef332548e24f08e205afc81b9ab86cb1c45657a7ff173a3a00e", "sdist"),
    Package("pypi", "attrs", "24.2.0", "5cfb1b9148b5b086569baec03f20d7b6bf3bcacc9a42bebf87ffaaca362f6346", "sdist"),
)}
# fmt: on
