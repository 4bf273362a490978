{
  "targets": [
    {
      "target_name": "netns",
      "sources": ["netns.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=9", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall"]
    },
    {
      "target_name": "launcher",
      "type": "executable",
      "sources": ["launcher.c"],
      "defines": ["CNIKIT_LIB=\"<(module_root_dir)/../dist/bin/.lib\""],
      "cflags": ["-std=c11", "-O2", "-Wall", "-Wextra"]
    }
  ]
}
